//! Helpers for the UI's unit tests.

use std::sync::Arc;

use crate::engine::crypto::{KdfParams, Secret};
use crate::engine::paths::DataDir;
use crate::engine::vault::NoKeychain;
use crate::engine::{Engine, EngineOptions};
use crate::ui::platform::FakePlatform;
use crate::ui::prefs::Prefs;
use crate::ui::screen::Ctx;

/// An unlocked engine on a temporary data dir, with a fake platform.
pub async fn ctx() -> (Ctx, tempfile::TempDir, FakePlatform) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = EngineOptions::new(DataDir::at(dir.path()), "test");
    opts.keystore = Arc::new(NoKeychain);
    opts.kdf = KdfParams::insecure_for_tests();
    // Alerts a test's actions raise never reach the session's D-Bus.
    opts.delivery = crate::engine::notify::Delivery::with_desktop(Arc::new(
        crate::engine::notify::RecordingNotifier::new(),
    ));
    let engine = Engine::open(opts).await.expect("engine opens");
    engine
        .setup_vault(Some(Secret::new("test passphrase")))
        .await
        .expect("vault");
    let fake = FakePlatform::new();
    (
        Ctx {
            engine,
            platform: Arc::new(fake.clone()),
            prefs: Prefs::default(),
        },
        dir,
        fake,
    )
}

/// Runs a task to completion and returns the messages it produced (other
/// runtime actions — focus, window operations — are dropped).
pub async fn run<M: Send + 'static>(task: iced::Task<M>) -> Vec<M> {
    use iced::futures::StreamExt;
    use iced_test::runtime::Action;
    let Some(stream) = iced_test::runtime::task::into_stream(task) else {
        return Vec::new();
    };
    stream
        .filter_map(|a| async move {
            match a {
                Action::Output(m) => Some(m),
                _ => None,
            }
        })
        .collect()
        .await
}
