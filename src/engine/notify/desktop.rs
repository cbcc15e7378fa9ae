//! Desktop notifications. The real notifier talks to the platform's
//! notification service (D-Bus on Linux), which may be missing (headless
//! machine, no session bus): that is an error value, never a panic, and the
//! call runs on a blocking thread with a time limit so nothing waits on it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shows a notification. Called on a blocking thread.
pub trait DesktopNotifier: Send + Sync {
    fn notify(&self, title: &str, body: &str) -> Result<(), String>;
}

/// The platform's notification service, through notify-rust.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemNotifier;

impl DesktopNotifier for SystemNotifier {
    fn notify(&self, title: &str, body: &str) -> Result<(), String> {
        notify_rust::Notification::new()
            .appname("supabackup")
            .summary(title)
            .body(body)
            .show()
            .map(|_| ())
            .map_err(|e| format!("no desktop notification service answered: {e}"))
    }
}

/// Records notifications instead of showing them (tests, previews); can be
/// told to fail.
#[derive(Debug, Clone, Default)]
pub struct RecordingNotifier {
    calls: Arc<Mutex<Vec<(String, String)>>>,
    fail_with: Option<String>,
}

impl RecordingNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A notifier that records the call, then answers `Err(message)`.
    pub fn failing(message: &str) -> Self {
        RecordingNotifier {
            calls: Arc::default(),
            fail_with: Some(message.to_owned()),
        }
    }

    /// The (title, body) pairs received so far.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

impl DesktopNotifier for RecordingNotifier {
    fn notify(&self, title: &str, body: &str) -> Result<(), String> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.push((title.to_owned(), body.to_owned()));
        match &self.fail_with {
            Some(m) => Err(m.clone()),
            None => Ok(()),
        }
    }
}

/// Runs `notifier` on a blocking thread, giving up after `timeout` (the
/// call is then left to finish on its own). A panic in the notifier is an
/// error too.
pub async fn show(
    notifier: Arc<dyn DesktopNotifier>,
    title: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), String> {
    let title = title.to_owned();
    let body = body.to_owned();
    let call = tokio::task::spawn_blocking(move || notifier.notify(&title, &body));
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(format!("the desktop notification failed: {e}")),
        Err(_) => Err(format!(
            "the desktop notification service did not answer within {} s",
            timeout.as_secs_f32()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panicking;
    impl DesktopNotifier for Panicking {
        fn notify(&self, _: &str, _: &str) -> Result<(), String> {
            panic!("boom")
        }
    }

    struct Slow;
    impl DesktopNotifier for Slow {
        fn notify(&self, _: &str, _: &str) -> Result<(), String> {
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        }
    }

    #[tokio::test]
    async fn panics_and_hangs_are_errors() {
        let r = show(Arc::new(Panicking), "t", "b", Duration::from_secs(2)).await;
        assert!(r.is_err());
        let started = std::time::Instant::now();
        let r = show(Arc::new(Slow), "t", "b", Duration::from_millis(100)).await;
        assert!(r.expect_err("timed out").contains("did not answer"));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn recording_notifier_records() {
        let n = RecordingNotifier::new();
        show(Arc::new(n.clone()), "title", "body", Duration::from_secs(1))
            .await
            .expect("ok");
        assert_eq!(n.calls(), vec![("title".to_owned(), "body".to_owned())]);
    }
}
