//! The real binary under Xvfb (software rendering): it opens on a data dir
//! holding projects and backups, shows the dashboard, saves a screenshot and
//! exits. `scripts/test.sh` installs Xvfb when it is missing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::seed;
use crate::support::engine::{PASSPHRASE, unlocked_engine};

/// Decodes a PNG into (width, height, RGBA).
pub fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).expect("open png");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgba, "RGBA expected");
    (info.width, info.height, buf)
}

/// Fails unless the image has real content: many colours, and a good share
/// of pixels that differ from the most common (background) colour.
pub fn assert_not_blank(path: &Path) {
    let (w, h, rgba) = read_png(path);
    assert!(w >= 640 && h >= 400, "{w}x{h}");
    let mut counts = std::collections::HashMap::<[u8; 4], usize>::new();
    for px in rgba.chunks_exact(4) {
        *counts.entry([px[0], px[1], px[2], px[3]]).or_default() += 1;
    }
    let total = (w * h) as usize;
    let background = counts.values().max().copied().unwrap_or(0);
    let foreground = total - background;
    assert!(
        counts.len() > 64,
        "only {} colours: a blank image?",
        counts.len()
    );
    assert!(
        foreground * 100 / total >= 3,
        "only {foreground} of {total} pixels differ from the background"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_shows_the_dashboard_under_xvfb() {
    let xvfb = ["/usr/bin/xvfb-run", "/bin/xvfb-run"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    let Some(xvfb) = xvfb else {
        panic!(
            "xvfb-run is missing: run scripts/test.sh (it installs xvfb), or apt-get install xvfb xauth"
        );
    };
    let t = unlocked_engine().await;
    seed::populate(&t.engine, 8, 400).await;
    let shot = t.dir.path().join("dashboard.png");
    let mut child = Command::new(xvfb)
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_supabackup"))
        .arg("--data-dir")
        .arg(t.dir.path())
        .arg("--screenshot")
        .arg(&shot)
        .env("ICED_BACKEND", "tiny-skia")
        .env("SUPABACKUP_PASSPHRASE", PASSPHRASE)
        .env("SUPABACKUP_NO_KEYCHAIN", "1")
        .env_remove("SUPABACKUP_DATA_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xvfb-run");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the app did not exit within 120 s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "exit {status}:\n{stderr}");
    assert!(
        stderr.contains("saved a screenshot of the Dashboard"),
        "{stderr}"
    );
    assert_not_blank(&shot);
    // A GUI started from a launcher has no terminal: its log is in logs/.
    let lines =
        supabackup::engine::logging::tail(&t.dir.path().join("logs"), 1000).expect("read logs");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[gui ") && l.contains("gui started")),
        "{lines:?}"
    );
    if let Ok(dir) = std::env::var("SUPABACKUP_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("smoke-dashboard.png"));
    }
}
