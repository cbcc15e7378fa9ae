//! Named moments at which a crash test can stop the process: with
//! `SUPABACKUP_FAILPOINT=<name>` set, reaching that point prints
//! `supabackup: failpoint <name> reached` on stderr and waits, so the test
//! can `kill -9` the process exactly there. Nothing happens when the
//! variable is unset (it never is in normal use).

use std::time::Duration;

pub const ENV: &str = "SUPABACKUP_FAILPOINT";
const WAIT: Duration = Duration::from_secs(600);

fn armed(name: &str) -> bool {
    std::env::var(ENV).is_ok_and(|v| v == name)
}

/// A failpoint in blocking code.
pub fn pause(name: &str) {
    if armed(name) {
        eprintln!("supabackup: failpoint {name} reached");
        std::thread::sleep(WAIT);
    }
}

/// A failpoint in async code.
pub async fn pause_async(name: &str) {
    if armed(name) {
        eprintln!("supabackup: failpoint {name} reached");
        tokio::time::sleep(WAIT).await;
    }
}
