//! Progress bars for the CLI's long jobs (indicatif): backups, restores and
//! restore tests show a bar against the expected size with bytes, rate,
//! ETA and the current table, in the same units the GUI uses
//! (`engine::units`). On anything but a terminal nothing is drawn, so
//! scripts and `--json` output stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::backup::{BackupProgress, Phase};
use crate::engine::restore::{RestorePhase, RestoreProgress};
use crate::engine::units;

/// A bar on stderr, or nothing when stderr is not a terminal.
#[derive(Clone)]
pub struct Bar(ProgressBar);

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Bar {
    pub fn new() -> Bar {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bar::with_target(target)
    }

    fn with_target(target: ProgressDrawTarget) -> Bar {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<11} [{bar:28}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar)
    }

    /// Shows a backup's report.
    pub fn backup(&self, p: &BackupProgress) {
        let (prefix, msg) = backup_text(p);
        self.show(prefix, msg, p.estimated_total, p.bytes_read);
    }

    /// Shows a restore's (or a restore test's) report.
    pub fn restore(&self, p: &RestoreProgress) {
        let (prefix, msg) = restore_text(p);
        let total = (p.total_bytes > 0).then_some(p.total_bytes);
        self.show(prefix, msg, total, p.bytes_applied);
    }

    fn show(&self, prefix: &'static str, msg: String, total: Option<u64>, done: u64) {
        match total {
            Some(t) => {
                self.0.set_length(t.max(done));
                self.0.set_position(done);
            }
            None => {
                self.0.unset_length();
                self.0.set_position(done);
            }
        }
        self.0.set_prefix(prefix);
        self.0.set_message(msg);
    }

    /// Removes the bar (the result is printed after it).
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn eta(s: Option<f64>) -> String {
    s.map(|s| format!(" · ETA {}", units::duration_secs(s)))
        .unwrap_or_default()
}

/// The bar's prefix and message for a backup report.
pub fn backup_text(p: &BackupProgress) -> (&'static str, String) {
    let prefix = match p.phase {
        Phase::Connecting => "connecting",
        Phase::Dumping => "dumping",
        Phase::Finalizing => "finalizing",
        Phase::Uploading => "uploading",
    };
    let of = p
        .estimated_total
        .map(|t| format!(" of ~{}", units::bytes(t as i64)))
        .unwrap_or_default();
    let at = p
        .destination
        .as_deref()
        .map(|d| format!(" · to {d}"))
        .or_else(|| p.current_table.as_deref().map(|t| format!(" · {t}")))
        .unwrap_or_default();
    (
        prefix,
        format!(
            "{}{of} read, {} written · {}{}{at}",
            units::bytes(p.bytes_read as i64),
            units::bytes(p.bytes_written as i64),
            units::rate(p.rate),
            eta(p.eta_secs)
        ),
    )
}

/// The bar's prefix and message for a restore report.
pub fn restore_text(p: &RestoreProgress) -> (&'static str, String) {
    let prefix = match p.phase {
        RestorePhase::Preparing => "preparing",
        RestorePhase::Snapshot => "snapshot",
        RestorePhase::Loading => "loading",
        RestorePhase::Checking => "checking",
    };
    let msg = match p.phase {
        RestorePhase::Loading => format!(
            "{} of {} applied · {}{}",
            units::bytes(p.bytes_applied as i64),
            units::bytes(p.total_bytes as i64),
            units::rate(p.rate),
            eta(p.eta_secs)
        ),
        RestorePhase::Preparing => "verifying the backup's files".into(),
        RestorePhase::Snapshot => "taking the safety snapshot of the target".into(),
        RestorePhase::Checking => "comparing every table with the manifest".into(),
    };
    (prefix, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_in_the_units_the_gui_uses() {
        let p = BackupProgress {
            backup_id: "b".into(),
            phase: Phase::Dumping,
            current_table: Some("public.orders".into()),
            bytes_read: 1_500_000,
            bytes_written: 300_000,
            rate: 2_000_000.0,
            estimated_total: Some(10_000_000),
            eta_secs: Some(3725.0),
            elapsed_secs: 1.0,
            destination: None,
        };
        let (prefix, msg) = backup_text(&p);
        assert_eq!(prefix, "dumping");
        assert_eq!(
            msg,
            format!(
                "{} of ~{} read, {} written · {} · ETA 1h 02m 05s · public.orders",
                units::bytes(1_500_000),
                units::bytes(10_000_000),
                units::bytes(300_000),
                units::rate(2_000_000.0)
            )
        );
        let r = RestoreProgress {
            restore_id: "r".into(),
            phase: RestorePhase::Loading,
            bytes_applied: 50,
            total_bytes: 200,
            rate: 10.0,
            eta_secs: Some(15.0),
            elapsed_secs: 5.0,
        };
        let (prefix, msg) = restore_text(&r);
        assert_eq!(prefix, "loading");
        assert!(msg.ends_with("ETA 15s"), "{msg}");
        // A hidden bar takes reports without drawing anything.
        let bar = Bar::with_target(ProgressDrawTarget::hidden());
        bar.backup(&p);
        bar.restore(&r);
        assert_eq!(bar.0.position(), 50);
        assert_eq!(bar.0.length(), Some(200));
        bar.finish();
    }
}
