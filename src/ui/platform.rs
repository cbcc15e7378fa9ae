//! The desktop around the app: file pickers, opening folders, notifications.
//! Everything goes through [`Platform`] so tests use [`FakePlatform`], and
//! every call is a future run inside a `Task` — a dialog that never answers
//! or a notification daemon that hangs cannot freeze a frame.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How long a notification or "open folder" may take before we give up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A file-type filter for pickers, e.g. `("Projects", ["json", "csv"])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub extensions: Vec<String>,
}

impl Filter {
    pub fn new(name: &str, extensions: &[&str]) -> Self {
        Filter {
            name: name.into(),
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

pub trait Platform: Send + Sync + 'static {
    /// Asks for an existing file; `None` when cancelled or no dialog exists.
    fn pick_file(&self, title: String, filters: Vec<Filter>) -> BoxFuture<Option<PathBuf>>;
    /// Asks where to save; `None` when cancelled or no dialog exists.
    fn save_file(&self, title: String, file_name: String) -> BoxFuture<Option<PathBuf>>;
    /// Opens a folder in the file manager.
    fn open_path(&self, path: PathBuf) -> BoxFuture<Result<(), String>>;
    // Desktop notifications are an alert channel: the engine's
    // `notify::DesktopNotifier` shows them (a recording one in tests).
}

impl std::fmt::Debug for dyn Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Platform")
    }
}

/// The real desktop: rfd dialogs and the system opener.
#[derive(Debug, Default, Clone, Copy)]
pub struct Desktop;

impl Platform for Desktop {
    fn pick_file(&self, title: String, filters: Vec<Filter>) -> BoxFuture<Option<PathBuf>> {
        Box::pin(async move {
            let mut d = rfd::AsyncFileDialog::new().set_title(title);
            for f in &filters {
                d = d.add_filter(f.name.clone(), &f.extensions);
            }
            d.pick_file().await.map(|h| h.path().to_path_buf())
        })
    }

    fn save_file(&self, title: String, file_name: String) -> BoxFuture<Option<PathBuf>> {
        Box::pin(async move {
            rfd::AsyncFileDialog::new()
                .set_title(title)
                .set_file_name(file_name)
                .save_file()
                .await
                .map(|h| h.path().to_path_buf())
        })
    }

    fn open_path(&self, path: PathBuf) -> BoxFuture<Result<(), String>> {
        Box::pin(async move {
            let opener = if cfg!(target_os = "macos") {
                "open"
            } else if cfg!(target_os = "windows") {
                "explorer"
            } else {
                "xdg-open"
            };
            let mut child = tokio::process::Command::new(opener)
                .arg(&path)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("could not run {opener}: {e}"))?;
            match tokio::time::timeout(CALL_TIMEOUT, child.wait()).await {
                Ok(Ok(s)) if s.success() || cfg!(target_os = "windows") => Ok(()),
                Ok(Ok(s)) => Err(format!("{opener} {} failed ({s})", path.display())),
                Ok(Err(e)) => Err(format!("{opener} failed: {e}")),
                // Still running (some openers stay): that is fine.
                Err(_) => Ok(()),
            }
        })
    }
}

/// What a [`FakePlatform`] was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformCall {
    PickFile(String),
    SaveFile(String),
    OpenPath(PathBuf),
}

/// A scripted platform for tests: answers pickers from queues and records
/// every call.
#[derive(Debug, Default, Clone)]
pub struct FakePlatform {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<PlatformCall>,
    pick_answers: Vec<Option<PathBuf>>,
    save_answers: Vec<Option<PathBuf>>,
}

impl FakePlatform {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `pick_file` answers this.
    pub fn answer_pick(&self, path: Option<&Path>) {
        self.state().pick_answers.push(path.map(Path::to_path_buf));
    }

    /// The next `save_file` answers this.
    pub fn answer_save(&self, path: Option<&Path>) {
        self.state().save_answers.push(path.map(Path::to_path_buf));
    }

    pub fn calls(&self) -> Vec<PlatformCall> {
        self.state().calls.clone()
    }
}

impl Platform for FakePlatform {
    fn pick_file(&self, title: String, _filters: Vec<Filter>) -> BoxFuture<Option<PathBuf>> {
        let mut s = self.state();
        s.calls.push(PlatformCall::PickFile(title));
        let answer = if s.pick_answers.is_empty() {
            None
        } else {
            s.pick_answers.remove(0)
        };
        Box::pin(async move { answer })
    }

    fn save_file(&self, title: String, _file_name: String) -> BoxFuture<Option<PathBuf>> {
        let mut s = self.state();
        s.calls.push(PlatformCall::SaveFile(title));
        let answer = if s.save_answers.is_empty() {
            None
        } else {
            s.save_answers.remove(0)
        };
        Box::pin(async move { answer })
    }

    fn open_path(&self, path: PathBuf) -> BoxFuture<Result<(), String>> {
        self.state().calls.push(PlatformCall::OpenPath(path));
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fake_answers_in_order_and_records_calls() {
        let f = FakePlatform::new();
        f.answer_pick(Some(Path::new("/tmp/a.json")));
        assert_eq!(
            f.pick_file("Import".into(), vec![]).await,
            Some(PathBuf::from("/tmp/a.json"))
        );
        assert_eq!(f.pick_file("Import".into(), vec![]).await, None);
        assert_eq!(f.calls().len(), 2);
    }
}
