//! A throw-away PostgreSQL cluster for integration tests, configured like a
//! hosted Supabase database (TLS required, SCRAM passwords, no trust/local
//! auth).
//!
//! One cluster is started lazily per test-binary process (first call to
//! [`cluster`]) and shared by all tests.  A detached guardian process stops
//! and deletes it when the test process exits for any reason (pass, panic,
//! abort, signal).
//!
//! Environment knobs:
//! * `SUPABACKUP_PG_BIN`  – directory holding `initdb`/`pg_ctl`/`psql` (overrides discovery)
//! * `SUPABACKUP_FIXTURES_DIR` – the shared fixtures folder when it is not
//!   `<crate>/../shared/fixtures`; `SUPABACKUP_FIXTURE` – `supabase_like.sql`
//!   itself
//! * `SUPABACKUP_KEEP_CLUSTER=1` – do not delete the cluster directory at exit
//!   (the server is still stopped), for post-mortem debugging

// Not every test uses every helper.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The shared test cluster.
pub struct Cluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Password of the `postgres` superuser.
    pub password: String,
    /// Directory holding `initdb`, `pg_ctl`, `psql`, `pg_dump`, ...
    pub bin_dir: PathBuf,
    /// Root directory of the cluster: `data/` (PGDATA), `server.log`, and the
    /// unix socket (reachable only by the role `sb_socket`).
    pub dir: PathBuf,
}

/// A database created in the shared cluster by [`Cluster::create_db`].
pub struct TestDb {
    pub name: String,
    pub cluster: &'static Cluster,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DB_COUNTER: AtomicU64 = AtomicU64::new(0);
/// The fixture creates cluster-wide roles "when missing"; concurrent loads
/// into different databases would race on CREATE ROLE, so loads are serialized.
static FIXTURE_LOCK: Mutex<()> = Mutex::new(());

/// Serializes work that changes cluster-wide roles (fixture loads, restores
/// of roles.sql): concurrent ALTER ROLE of the same role in two sessions
/// fails with "tuple concurrently updated".
pub fn roles_lock() -> std::sync::MutexGuard<'static, ()> {
    FIXTURE_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shared cluster, started on first call.  Panics (in every caller) when
/// the cluster could not be started.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start_cluster) {
        Ok(c) => c,
        Err(e) => panic!("test PostgreSQL cluster is not available:\n{e}"),
    }
}

/// A cluster of the calling test's own, for tests that stop the server
/// (the shared one must keep running). Like the shared one it is removed
/// when the test process exits.
pub fn own_cluster() -> Cluster {
    start_cluster().unwrap_or_else(|e| panic!("a test PostgreSQL cluster could not start:\n{e}"))
}

/// `supabase_like.sql` in the fixtures folder (`SUPABACKUP_FIXTURES_DIR` or
/// `../shared/fixtures`), or `$SUPABACKUP_FIXTURE`.
pub fn fixture_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SUPABACKUP_FIXTURE") {
        return PathBuf::from(p);
    }
    let default = super::platform::fixtures_dir().join("supabase_like.sql");
    if !default.is_file() {
        panic!(
            "test fixture not found: {} does not exist (set SUPABACKUP_FIXTURES_DIR to the folder holding supabase_like.sql)",
            default.display()
        );
    }
    default
}

impl Cluster {
    /// Stops the server (fast shutdown) and waits until it is down.
    pub fn stop(&self) {
        let server = ServerUser {
            as_root: current_uid().is_ok_and(|u| u == 0),
            dir: self.dir.clone(),
        };
        let data = self.dir.join("data");
        let out = server
            .run(
                &self.bin("pg_ctl"),
                &[
                    OsStr::new("-D"),
                    data.as_os_str(),
                    OsStr::new("-m"),
                    OsStr::new("fast"),
                    OsStr::new("-w"),
                    OsStr::new("stop"),
                ],
            )
            .unwrap_or_else(|e| panic!("pg_ctl stop: {e}"));
        assert!(out.status.success(), "pg_ctl stop: {}", output_text(&out));
    }

    /// The scratch server as a user sets it: a URL without a password
    /// (for `set_scratch_url` / `job scratch-server`) and a 0600 passfile
    /// in `dir` holding the password (for `PGPASSFILE`).
    pub fn scratch(&self, dir: &Path) -> (String, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let url = format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=require",
            self.port
        );
        let passfile = dir.join("scratch.pgpass");
        std::fs::write(
            &passfile,
            format!("127.0.0.1:{}:*:postgres:{}\n", self.port, self.password),
        )
        .expect("passfile");
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        (url, passfile)
    }

    /// `postgresql://postgres:<pw>@127.0.0.1:<port>/<db>?sslmode=require`
    pub fn url(&self, db: &str) -> String {
        self.url_for("postgres", &self.password, db)
    }

    /// Like [`Cluster::url`] for another role; user, password and db are percent-encoded.
    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgresql://{}:{}@127.0.0.1:{}/{}?sslmode=require",
            pct(user),
            pct(password),
            self.port,
            pct(db)
        )
    }

    /// Creates a fresh, empty database named `<prefix>_<n>_<pid>`.
    pub fn create_db(&'static self, prefix: &str) -> TestDb {
        self.create_db_with(prefix, None)
    }

    /// Creates a database as a copy of `template`.
    pub fn create_db_from(&'static self, prefix: &str, template: &str) -> TestDb {
        self.create_db_with(prefix, Some(template))
    }

    fn create_db_with(&'static self, prefix: &str, template: Option<&str>) -> TestDb {
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = db_name(prefix, n, std::process::id());
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        // CREATE DATABASE fails if another session happens to be connected to
        // the template; that is transient, so retry a few times.
        let mut attempt = 0;
        loop {
            match self.try_psql("postgres", &sql) {
                Ok(_) => break,
                Err(e) if attempt < 120 && e.contains("is being accessed by other users") => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(e) => panic!("CREATE DATABASE {name} failed:\n{e}"),
            }
        }
        TestDb {
            name,
            cluster: self,
        }
    }

    /// Runs SQL (and/or psql meta-commands) as `postgres` in `db`; panics with
    /// psql's stderr on failure; returns stdout (unaligned, tuples only) trimmed.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        match self.try_psql(db, sql) {
            Ok(out) => out,
            Err(e) => {
                panic!("psql failed in database {db:?}:\n--- sql ---\n{sql}\n--- error ---\n{e}")
            }
        }
    }

    /// Like [`Cluster::psql`] but returns psql's stderr (and exit status) as the error.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = self.psql_cmd(db);
        cmd.args(["-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
        let out =
            run_with_stdin(cmd, sql.as_bytes()).map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql exited with {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ))
        }
    }

    /// A `psql -X` command connected (through the environment, never argv) to
    /// `db` as `postgres` over TLS.  All inherited `PG*` variables are removed
    /// first; override e.g. `PGSSLMODE`/`PGPASSWORD`/`PGUSER` with `.env()`.
    pub fn psql_cmd(&self, db: &str) -> Command {
        let mut cmd = Command::new(self.bin("psql"));
        self.pg_env(&mut cmd, db);
        cmd.arg("-X");
        cmd
    }

    /// Sets the libpq environment (host, port, user, password, TLS) on any
    /// client command (`psql`, `pg_dump`, ...).
    pub fn pg_env(&self, cmd: &mut Command, db: &str) {
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", db)
            .env("PGSSLMODE", "require")
            // Pin the root certificate so a ~/.postgresql/root.crt of the
            // user running the tests cannot turn `require` into a failing verify-ca.
            .env("PGSSLROOTCERT", self.ca_cert())
            .env("PGGSSENCMODE", "disable")
            .env("PGCONNECT_TIMEOUT", "30")
            .env("PGAPPNAME", "supabackup-tests")
            .stdin(Stdio::null());
    }

    /// Path of a PostgreSQL program in [`Cluster::bin_dir`] (falls back to the
    /// bare name, i.e. `$PATH`, when it is not there).
    pub fn bin(&self, program: &str) -> PathBuf {
        let p = self.bin_dir.join(program);
        if p.is_file() {
            p
        } else {
            PathBuf::from(program)
        }
    }

    /// Major version of the running server (e.g. 15).
    pub fn server_major(&self) -> u32 {
        if let Some(v) = std::fs::read_to_string(self.dir.join("data/PG_VERSION"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            return v;
        }
        let num: u32 = self
            .psql("postgres", "SHOW server_version_num")
            .parse()
            .expect("server_version_num is a number");
        num / 10_000
    }

    /// The server's self-signed certificate, usable as root certificate for
    /// `sslmode=verify-full` (it is valid for `localhost` and `127.0.0.1`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Path of the server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

impl TestDb {
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    pub fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.name, sql)
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.cluster.try_psql(&self.name, sql)
    }

    /// Loads the full Supabase-like fixture (platform + application + data).
    pub fn load_fixture(&self) {
        self.run_fixture(&[]);
    }

    /// Loads only the "new empty Supabase project" baseline (`-v platform_only=1`).
    pub fn load_platform_only(&self) {
        self.run_fixture(&["-v", "platform_only=1"]);
    }

    fn run_fixture(&self, extra: &[&str]) {
        let fixture = fixture_path();
        let _guard = FIXTURE_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut cmd = self.cluster.psql_cmd(&self.name);
        cmd.args(["-q", "-v", "ON_ERROR_STOP=1"])
            .args(extra)
            .arg("-f")
            .arg(&fixture);
        let out = cmd.output().expect("cannot run psql");
        assert!(
            out.status.success(),
            "loading fixture {} {:?} into {} failed ({}):\n{}",
            fixture.display(),
            extra,
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------
// start-up
// ---------------------------------------------------------------------------

fn start_cluster() -> Result<Cluster, String> {
    let bin_dir = find_bin_dir()?;
    let as_root = current_uid()? == 0;
    let owner = if as_root {
        Some((id_num(&["-u", "postgres"])?, id_num(&["-g", "postgres"])?))
    } else {
        None
    };

    let dir = base_temp_dir(as_root).join(format!(
        "supabackup-pg-{}-{}",
        std::process::id(),
        random_hex(4)?
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    if let Some((uid, gid)) = owner {
        chown(&dir, uid, gid)?;
    }
    let data = dir.join("data");
    let log = dir.join("server.log");

    // From here on the guardian deletes `dir` when this process exits, even if
    // the rest of the start-up fails.
    spawn_guardian(&bin_dir, &dir, &data, as_root)?;

    let server = ServerUser {
        as_root,
        dir: dir.clone(),
    };

    // --- initdb ------------------------------------------------------------
    let password = random_hex(16)?;
    let pwfile = dir.join("pwfile");
    write_file(&pwfile, format!("{password}\n").as_bytes(), 0o600)?;
    if let Some((uid, gid)) = owner {
        chown(&pwfile, uid, gid)?;
    }
    let initdb = |locale: &str| -> Result<Output, String> {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("-D"),
            data.as_os_str(),
            OsStr::new("-U"),
            OsStr::new("postgres"),
            OsStr::new("--auth=scram-sha-256"),
        ];
        let pw_arg = format!("--pwfile={}", pwfile.display());
        let locale_arg = format!("--locale={locale}");
        args.push(OsStr::new(&pw_arg));
        args.extend([
            OsStr::new("-E"),
            OsStr::new("UTF8"),
            OsStr::new(&locale_arg),
        ]);
        args.push(OsStr::new("--no-sync"));
        server.run(&bin_dir.join("initdb"), &args)
    };
    let first = initdb("C.UTF-8")?;
    if !first.status.success() {
        let second = initdb("C")?;
        if !second.status.success() {
            return Err(format!(
                "initdb failed with --locale=C.UTF-8:\n{}\nand with --locale=C:\n{}",
                output_text(&first),
                output_text(&second)
            ));
        }
    }
    let _ = std::fs::remove_file(&pwfile);

    // --- TLS certificates -----------------------------------------------------
    // A throw-away CA signs the server certificate (as on the hosted
    // platform), so clients can verify the chain with sslmode=verify-full.
    let crt = data.join("server.crt");
    let key = data.join("server.key");
    let ca = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let csr = dir.join("server.csr");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .map_err(|e| format!("write {}: {e}", ext.display()))?;
    let openssl = |args: &[&OsStr]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run openssl (is it installed?): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("openssl {:?} failed:\n{}", args, output_text(&out)))
        }
    };
    let os = |s: &'static str| OsStr::new(s);
    openssl(&[
        os("req"),
        os("-x509"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-days"),
        os("2"),
        os("-subj"),
        os("/CN=supabackup test CA"),
        os("-keyout"),
        ca_key.as_os_str(),
        os("-out"),
        ca.as_os_str(),
    ])?;
    openssl(&[
        os("req"),
        os("-new"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-subj"),
        os("/CN=localhost"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ])?;
    openssl(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-days"),
        os("2"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        crt.as_os_str(),
    ])?;
    set_mode(&key, 0o600)?;
    set_mode(&crt, 0o644)?;
    set_mode(&ca, 0o644)?;
    if let Some((uid, gid)) = owner {
        chown(&key, uid, gid)?;
        chown(&crt, uid, gid)?;
    }

    // --- configuration --------------------------------------------------------
    let conf = format!(
        "\n# --- supabackup test cluster ---\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{}'\n\
         ssl = on\n\
         ssl_cert_file = 'server.crt'\n\
         ssl_key_file = 'server.key'\n\
         password_encryption = 'scram-sha-256'\n\
         max_connections = 200\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         log_min_messages = warning\n\
         log_connections = off\n",
        dir.display().to_string().replace('\'', "''")
    );
    append_file(&data.join("postgresql.conf"), conf.as_bytes())?;
    // One role asks for its password in clear text (method `password`), so
    // tests can check it is sent only to a verified server; one may use the
    // local socket (every other connection must be TLS).
    let hba = "# supabackup test cluster: TLS + SCRAM only, like hosted Supabase\n\
               local all sb_socket scram-sha-256\n\
               hostssl all sb_cleartext 127.0.0.1/32 password\n\
               hostssl all all 127.0.0.1/32 scram-sha-256\n\
               hostssl all all ::1/128      scram-sha-256\n";
    std::fs::write(data.join("pg_hba.conf"), hba).map_err(|e| format!("write pg_hba.conf: {e}"))?;

    // --- start (retry with another port if the free port got taken) --------------
    let mut last_err = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let port_opt = format!("-p {port}");
        let args: Vec<&OsStr> = vec![
            OsStr::new("-D"),
            data.as_os_str(),
            OsStr::new("-l"),
            log.as_os_str(),
            OsStr::new("-o"),
            OsStr::new(&port_opt),
            OsStr::new("-w"),
            OsStr::new("-t"),
            OsStr::new("60"),
            OsStr::new("start"),
        ];
        let out = server.run(&bin_dir.join("pg_ctl"), &args)?;
        if out.status.success() {
            return Ok(Cluster {
                port,
                password,
                bin_dir,
                dir,
            });
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        last_err = format!(
            "pg_ctl start failed:\n{}\n--- {} ---\n{}",
            output_text(&out),
            log.display(),
            log_text
        );
        if !log_text.contains("could not bind") && !log_text.contains("already in use") {
            break;
        }
    }
    Err(last_err)
}

/// Runs server-side programs as the OS user that owns the cluster.
struct ServerUser {
    as_root: bool,
    dir: PathBuf,
}

impl ServerUser {
    fn run(&self, program: &Path, args: &[&OsStr]) -> Result<Output, String> {
        let mut cmd = if self.as_root {
            let mut c = Command::new(runuser());
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).current_dir(&self.dir).stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        cmd.output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))
    }
}

/// `std::env::temp_dir()`, unless the server user (`postgres`, when running
/// as root) could not reach it, e.g. `TMPDIR=/root/tmp`; then `/tmp`.
fn base_temp_dir(as_root: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::env::temp_dir();
    if !as_root {
        return tmp;
    }
    let reachable = tmp
        .ancestors()
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if reachable {
        tmp
    } else {
        PathBuf::from("/tmp")
    }
}

fn runuser() -> PathBuf {
    for p in ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("runuser")
}

/// Detached process that waits for this process to exit, then stops the
/// cluster (immediate mode) and deletes its directory.
fn spawn_guardian(bin_dir: &Path, dir: &Path, data: &Path, as_root: bool) -> Result<(), String> {
    let script = r#"
        tail --pid="$1" -f /dev/null 2>/dev/null || while kill -0 "$1" 2>/dev/null; do sleep 1; done
        if [ -f "$4/postmaster.pid" ]; then
            if [ "$5" = 1 ]; then
                "$6" -u postgres -- "$2/pg_ctl" -D "$4" -m immediate -w -t 30 stop
            else
                "$2/pg_ctl" -D "$4" -m immediate -w -t 30 stop
            fi
        fi
        if [ "$7" != 1 ]; then rm -rf -- "$3"; fi
    "#;
    let keep = std::env::var("SUPABACKUP_KEEP_CLUSTER").is_ok_and(|v| v == "1");
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .arg("supabackup-pg-guardian")
        .arg(std::process::id().to_string())
        .arg(bin_dir)
        .arg(dir)
        .arg(data)
        .arg(if as_root { "1" } else { "0" })
        .arg(runuser())
        .arg(if keep { "1" } else { "0" })
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot spawn the cleanup guardian (setsid sh): {e}"))
}

/// Directory with `initdb` + `pg_ctl`: `$SUPABACKUP_PG_BIN`, else the highest
/// major among `$PATH` and `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("SUPABACKUP_PG_BIN") {
        let d = PathBuf::from(d);
        return if has_tools(&d) {
            Ok(d)
        } else {
            Err(format!(
                "SUPABACKUP_PG_BIN={} has no initdb/pg_ctl",
                d.display()
            ))
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            // Resolve symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
            // so the programs used together all come from one installation.
            if let Ok(real) = std::fs::canonicalize(d.join("initdb"))
                && let Some(parent) = real.parent()
                && has_tools(parent)
            {
                candidates.push(parent.to_path_buf());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let d = e.path().join("bin");
            if has_tools(&d) {
                candidates.push(d);
            }
        }
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for d in candidates {
        let major = tool_major(&d).unwrap_or(0);
        if best.as_ref().is_none_or(|(m, _)| major > *m) {
            best = Some((major, d));
        }
    }
    best.map(|(_, d)| d).ok_or_else(|| {
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under \
         /usr/lib/postgresql/*/bin; install the `postgresql` package (or set SUPABACKUP_PG_BIN)"
            .to_string()
    })
}

/// Major version from `pg_ctl --version` ("pg_ctl (PostgreSQL) 15.20 (Debian ...)").
fn tool_major(bin_dir: &Path) -> Option<u32> {
    let out = Command::new(bin_dir.join("pg_ctl"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?;
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn current_uid() -> Result<u32, String> {
    id_num(&["-u"])
}

fn id_num(args: &[&str]) -> Result<u32, String> {
    let out = Command::new("id")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "id {} failed: {}",
            args.join(" "),
            output_text(&out)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("id {}: {e}", args.join(" ")))
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port();
    drop(listener);
    Ok(port)
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("read /dev/urandom: {e}"))?;
    let mut s = String::with_capacity(bytes * 2);
    for b in buf {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

/// `<prefix>_<n>_<pid>`: lowercase, `[a-z0-9_]`, starts with a letter or `_`, ≤ 63 bytes.
fn db_name(prefix: &str, n: u64, pid: u32) -> String {
    let mut p: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if p.is_empty() || p.starts_with(|c: char| c.is_ascii_digit()) {
        p.insert_str(0, "db_");
    }
    let suffix = format!("_{n}_{pid}");
    p.truncate(63 - suffix.len());
    p + &suffix
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn run_with_stdin(mut cmd: Command, input: &[u8]) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take();
    let input = input.to_vec();
    // Write from another thread so a large input cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // psql may exit early (ON_ERROR_STOP); a broken pipe is reported via its status.
            let _ = stdin.write_all(&input);
        }
    });
    let out = child.wait_with_output();
    let _ = writer.join();
    out
}

fn output_text(out: &Output) -> String {
    format!(
        "status: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))?;
    set_mode(path, mode)
}

fn append_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(|e| format!("append to {}: {e}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {mode:o} {}: {e}", path.display()))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {uid}:{gid} {}: {e}", path.display()))
}
