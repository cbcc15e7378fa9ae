//! Running pg_dump / pg_dumpall: the password reaches them through a 0600
//! passfile (never argv), stdout is streamed to a sink in bounded chunks,
//! stderr is kept for error messages, and cancellation kills the process.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::engine::conninfo::ConnInfo;
use crate::engine::error::{Error, ErrorKind, Result};

const CHUNK: usize = 256 * 1024;

/// A 0600 passfile holding one line for the connection; removed on drop.
pub struct PassFile {
    path: PathBuf,
}

fn escape(field: &str) -> String {
    field.replace('\\', "\\\\").replace(':', "\\:")
}

impl PassFile {
    /// Writes the passfile for `info` (which must carry the password) at `path`.
    pub fn create(path: &Path, info: &ConnInfo) -> Result<Option<PassFile>> {
        let Some(password) = &info.password else {
            return Ok(None);
        };
        let line = format!(
            "{}:{}:*:{}:{}\n",
            escape(&info.host),
            info.port,
            escape(&info.user),
            escape(password.expose())
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(path)
            .map_err(|e| Error::io("create the passfile", path, e))?;
        f.write_all(line.as_bytes())
            .map_err(|e| Error::io("write the passfile", path, e))?;
        Ok(Some(PassFile {
            path: path.to_path_buf(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PassFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One invocation of a PostgreSQL client program.
#[derive(Clone)]
pub struct ToolRun<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    pub info: &'a ConnInfo,
    pub passfile: Option<&'a Path>,
}

impl ToolRun<'_> {
    fn command(&self) -> Command {
        let mut cmd = Command::new(self.program);
        cmd.args(&self.args);
        // A fresh environment: our connection settings, nothing inherited
        // that could name a secret or another server.
        crate::engine::childenv::apply(&mut cmd);
        for (k, v) in self.info.libpq_env() {
            cmd.env(k, v);
        }
        if let Some(p) = self.passfile {
            cmd.env("PGPASSFILE", p);
        }
        // Deterministic text for timestamps in dumps (and their checksums).
        cmd.env("PGTZ", "UTC").env("PGDATESTYLE", "ISO");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

fn program_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A running tool: its stderr's last lines are kept for the error message,
/// and a watcher kills it when the job is cancelled (a blocking read or
/// write cannot look at the token itself).
struct Supervised {
    child: Arc<Mutex<Child>>,
    tail: Arc<Mutex<Vec<String>>>,
    stderr_thread: std::thread::JoinHandle<()>,
    finished: Arc<std::sync::atomic::AtomicBool>,
    watcher: std::thread::JoinHandle<()>,
}

impl Supervised {
    fn spawn(
        mut cmd: Command,
        program: &Path,
        cancel: &CancellationToken,
    ) -> Result<(Self, ChildStdout, Option<ChildStdin>)> {
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::tool(format!("could not start {}: {e}", program.display())))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::internal("no stdout pipe"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("no stderr pipe"))?;
        let child = Arc::new(Mutex::new(child));
        let tail: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let stderr_thread = {
            let tail = tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    if let Ok(mut t) = tail.lock() {
                        t.push(line);
                        if t.len() > 30 {
                            t.remove(0);
                        }
                    }
                }
            })
        };
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let child = child.clone();
            let cancel = cancel.clone();
            let finished = finished.clone();
            std::thread::spawn(move || {
                while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                    if cancel.is_cancelled() {
                        if let Ok(mut c) = child.lock() {
                            let _ = c.kill();
                        }
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        };
        Ok((
            Supervised {
                child,
                tail,
                stderr_thread,
                finished,
                watcher,
            },
            stdout,
            stdin,
        ))
    }

    fn kill(&self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
    }

    /// Waits for the tool and its helper threads.
    fn wait(self) -> (std::io::Result<std::process::ExitStatus>, Vec<String>) {
        let status = match self.child.lock() {
            Ok(mut c) => c.wait(),
            Err(p) => p.into_inner().wait(),
        };
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.watcher.join();
        let _ = self.stderr_thread.join();
        let lines = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        (status, lines)
    }
}

/// The most telling stderr line of a failed tool, URLs redacted.
fn failure_detail(lines: &[String], status: std::process::ExitStatus) -> String {
    let detail = lines
        .iter()
        .rev()
        .find(|l| l.contains("ERROR") || l.contains("FATAL") || l.contains("error"))
        .or(lines.last())
        .cloned()
        .unwrap_or_else(|| format!("exit status {status}"));
    crate::engine::conninfo::redact_url(&detail)
}

/// Runs the tool, handing its stdout to `sink` chunk by chunk. Stops and
/// kills the process when `cancel` fires or the sink fails.
pub fn stream(
    run: &ToolRun<'_>,
    cancel: &CancellationToken,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<()> {
    let name = program_name(run.program);
    let (tool, mut stdout, _) = Supervised::spawn(run.command(), run.program, cancel)?;
    let mut buf = vec![0u8; CHUNK];
    let mut sink_error: Option<std::io::Error> = None;
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = sink(&buf[..n]) {
                    sink_error = Some(e);
                    tool.kill();
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                sink_error = Some(e);
                break;
            }
        }
    }
    drop(stdout);
    let (status, lines) = tool.wait();
    if cancel.is_cancelled() {
        return Err(Error::cancelled());
    }
    if let Some(e) = sink_error {
        let hint = (e.kind() == std::io::ErrorKind::StorageFull)
            .then_some("free some disk space and try again");
        let err = Error::new(
            ErrorKind::Io,
            format!("writing the output of {name} failed: {e}"),
        );
        return Err(match hint {
            Some(h) => err.with_hint(h),
            None => err,
        });
    }
    let status = status.map_err(|e| Error::internal(format!("waiting for {name} failed: {e}")))?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::Connection,
            format!("{name} failed: {}", failure_detail(&lines, status)),
        ));
    }
    Ok(())
}

/// Runs the tool (psql) with `producer` writing its standard input; each
/// line of its stdout goes to `on_line`, stderr is kept for the error
/// message. Cancelling kills the tool, which makes the server roll back its
/// open transaction.
pub fn feed(
    run: &ToolRun<'_>,
    cancel: &CancellationToken,
    mut on_line: Box<dyn FnMut(&str) + Send>,
    producer: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let name = program_name(run.program);
    let mut cmd = run.command();
    cmd.stdin(Stdio::piped());
    let (tool, stdout, stdin) = Supervised::spawn(cmd, run.program, cancel)?;
    let stdin = stdin.ok_or_else(|| Error::internal("no stdin pipe"))?;
    let out_thread = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => on_line(String::from_utf8_lossy(&line).trim_end()),
            }
        }
    });
    // Buffered: the guard and the data filter write line by line, and the
    // tool gets 256 KiB writes instead of a system call per row. A producer
    // that waits for the tool's answer flushes first. On failure the buffer is dropped unsent (into_parts), so
    // nothing more reaches the tool before it is killed.
    let mut buffered = std::io::BufWriter::with_capacity(256 * 1024, stdin);
    let mut produced = producer(&mut buffered);
    if produced.is_ok()
        && let Err(e) = buffered.flush()
    {
        produced = Err(Error::new(
            ErrorKind::Connection,
            format!("{name} stopped reading its input: {e}"),
        ));
    }
    let (stdin, _unsent) = buffered.into_parts();
    // A broken pipe means the tool stopped reading (it failed: its own
    // error is the one to report). Any other producer failure must never
    // look like a clean end of input: the tool is killed before its stdin
    // closes, so the transaction it holds is rolled back, not committed.
    let tool_failed_first = matches!(&produced, Err(e) if e.message.contains("Broken pipe") || e.message.contains("stopped reading"));
    if produced.is_err() && !tool_failed_first {
        tool.kill();
    }
    drop(stdin);
    let (status, lines) = tool.wait();
    let _ = out_thread.join();
    if cancel.is_cancelled() {
        return Err(Error::cancelled());
    }
    if !tool_failed_first {
        produced.clone()?;
    }
    let status = status.map_err(|e| Error::internal(format!("waiting for {name} failed: {e}")))?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("{name} stopped: {}", failure_detail(&lines, status)),
        )
        .with_hint(
            "nothing was changed: the whole restore ran in one transaction, which was rolled back",
        ));
    }
    produced
}
