//! Real object-storage servers for the destination tests: moto's S3 server
//! and Azurite's Blob service, each started once per test process on a free
//! loopback port. A guardian process (like the PostgreSQL cluster's) kills a
//! server when the test process exits, however it exits.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Azurite's well-known development account (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// moto accepts any credentials.
pub const S3_KEY_ID: &str = "testing-key";
pub const S3_SECRET: &str = "testing-secret";

pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A loopback port nothing listens on (for "destination down" tests).
pub fn closed_port() -> u16 {
    free_port()
}

fn wait_listening(port: u16, what: &str, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not start listening on 127.0.0.1:{port} within 60 s; its log:\n{log}");
}

/// Starts `program args…` in its own session with a guardian that kills it
/// when this test process exits.
fn spawn_with_guardian(program: &str, args: &[String], dir: &std::path::Path, what: &str) {
    let log = dir.join("server.log");
    let script = r#"
        "$@" >"$LOG" 2>&1 &
        child=$!
        tail --pid="$PARENT" -f /dev/null 2>/dev/null || while kill -0 "$PARENT" 2>/dev/null; do sleep 1; done
        kill "$child" 2>/dev/null
        sleep 1
        kill -9 "$child" 2>/dev/null
        rm -rf -- "$DIR"
    "#;
    let mut cmd = Command::new("setsid");
    cmd.arg("sh")
        .arg("-c")
        .arg(script)
        .arg("supabackup-objstore-guardian")
        .arg(program)
        .args(args)
        .env("LOG", &log)
        .env("PARENT", std::process::id().to_string())
        .env("DIR", dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The guardian outlives this process on purpose (setsid): it is the
    // one that stops the server.
    cmd.spawn()
        .map(drop)
        .unwrap_or_else(|e| panic!("cannot start {what} ({program}): {e}"));
}

fn server_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("supabackup-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("server dir");
    dir
}

fn require(program: &str, hint: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed; {hint} (scripts/test.sh installs it)"
    );
}

/// moto's S3-compatible server (`pip install 'moto[server]'`).
pub fn s3() -> &'static Server {
    static S3: OnceLock<Server> = OnceLock::new();
    S3.get_or_init(|| {
        require("moto_server", "pip install 'moto[server]'");
        let port = free_port();
        let dir = server_dir("moto");
        spawn_with_guardian(
            "moto_server",
            &[
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ],
            &dir,
            "the S3 test server",
        );
        wait_listening(port, "moto_server", &dir.join("server.log"));
        Server { port, dir }
    })
}

/// Azurite's Blob service (`npm install -g azurite`).
pub fn azurite() -> &'static Server {
    static AZ: OnceLock<Server> = OnceLock::new();
    AZ.get_or_init(|| {
        require("azurite-blob", "npm install -g azurite");
        let port = free_port();
        let dir = server_dir("azurite");
        spawn_with_guardian(
            "azurite-blob",
            &[
                "--blobHost".into(),
                "127.0.0.1".into(),
                "--blobPort".into(),
                port.to_string(),
                "--location".into(),
                dir.join("data").display().to_string(),
                "--skipApiVersionCheck".into(),
                "--loose".into(),
            ],
            &dir,
            "Azurite",
        );
        wait_listening(port, "azurite-blob", &dir.join("server.log"));
        Server { port, dir }
    })
}

/// Creates an S3 bucket on the moto server (moto's REST API: PUT /bucket).
pub fn create_bucket(name: &str) {
    let s = s3();
    let status = http_put(s.port, &format!("/{name}"), &[]);
    assert!(
        status == 200 || status == 409,
        "creating bucket {name} answered HTTP {status}"
    );
}

/// Azurite's endpoint for the development account.
pub fn azure_endpoint() -> String {
    format!("{}/{}", azurite().endpoint(), AZURITE_ACCOUNT)
}

/// Creates a container on Azurite. Azurite wants a Shared Key-signed
/// request, and object_store creates no containers, so a few lines of
/// Python's standard library (hmac, urllib) sign this one test-set-up call.
pub fn create_container(name: &str) {
    const SIGN_AND_PUT: &str = r#"
import base64, email.utils, hashlib, hmac, sys, urllib.error, urllib.request
port, account, key, container = sys.argv[1:5]
date = email.utils.formatdate(usegmt=True)
ver = "2021-08-06"
ctype = "application/octet-stream"
to_sign = ("PUT\n\n\n\n\n" + ctype + "\n\n\n\n\n\n\n"
           + "x-ms-date:" + date + "\nx-ms-version:" + ver + "\n"
           + "/" + account + "/" + account + "/" + container + "\nrestype:container")
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(
    "http://127.0.0.1:%s/%s/%s?restype=container" % (port, account, container),
    method="PUT", data=b"",
    headers={"x-ms-date": date, "x-ms-version": ver, "Content-Type": ctype,
             "Authorization": "SharedKey %s:%s" % (account, sig)})
try:
    print(urllib.request.urlopen(req).status)
except urllib.error.HTTPError as e:
    print(e.code)
"#;
    let az = azurite();
    let out = Command::new("python3")
        .arg("-c")
        .arg(SIGN_AND_PUT)
        .arg(az.port.to_string())
        .arg(AZURITE_ACCOUNT)
        .arg(AZURITE_KEY)
        .arg(name)
        .output()
        .expect("python3 runs");
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        status == "201" || status == "409",
        "creating container {name} answered {status}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A minimal HTTP/1.1 PUT on loopback, returning the status code.
fn http_put(port: u16, path: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
