//! Alerts end to end, on 127.0.0.1 only: signed webhooks received by a tiny
//! HTTP server (retries after 500, none after 400), e-mail received by a
//! tiny SMTP server, desktop notifications (fake and real without a session
//! bus), rule matching, stale-backup detection, and secrets kept sealed.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use supabackup::engine::crypto::Secret;
use supabackup::engine::notify::{
    Alert, AlertKind, AlertRule, Channel, ChatChannel, ChatService, Delivery, DeliveryOutcome,
    EmailChannel, RecordingNotifier, RetryPolicy, RuleSecrets, SmtpSecurity, SystemNotifier,
};
use supabackup::engine::{Engine, ErrorKind};

use crate::support::engine::{TestEngine, files_containing, input, unlocked_engine};

const URL: &str = "postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres";
pub(crate) const WEBHOOK_SECRET: &str = "whsec-Global-0123456789abcdef";
const SMTP_PASSWORD: &str = "SmtpS3cret-Passw0rd-xyz";
/// Every delivery in these tests must end well within this.
const BOUND: Duration = Duration::from_secs(30);

// ----- a tiny HTTP server -------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// An answer: a status, extra header lines ("Name: value\r\n" each) and a
/// body.
pub(crate) type Reply = (u16, String, String);
type Responder = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

#[derive(Clone)]
pub(crate) struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpServer {
    /// Answers with `statuses` in turn, then 200; records every request.
    pub(crate) fn start(statuses: &[u16]) -> HttpServer {
        let script: Vec<(u16, Option<&str>)> = statuses.iter().map(|s| (*s, None)).collect();
        HttpServer::scripted(&script)
    }

    /// Answers with these statuses and `Retry-After` headers in turn, then 200.
    pub(crate) fn scripted(answers: &[(u16, Option<&str>)]) -> HttpServer {
        let script = Mutex::new(
            answers
                .iter()
                .map(|(s, r)| (*s, r.map(str::to_owned)))
                .collect::<VecDeque<(u16, Option<String>)>>(),
        );
        HttpServer::answering(move |_| {
            let (status, retry_after) = script
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or((200, None));
            let extra = retry_after
                .map(|r| format!("Retry-After: {r}\r\n"))
                .unwrap_or_default();
            (status, extra, "ok".into())
        })
    }

    /// Answers every request with what `respond` says; records them.
    pub(crate) fn answering(
        respond: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Responder = Arc::new(respond);
        let rec = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (rec, respond) = (rec.clone(), respond.clone());
                std::thread::spawn(move || serve_http(stream, &rec, respond.as_ref()));
            }
        });
        HttpServer { port, requests }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

fn serve_http(
    stream: TcpStream,
    rec: &Mutex<Vec<Request>>,
    respond: &(dyn Fn(&Request) -> Reply + Send + Sync),
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    // Keep-alive: serve requests on this connection until it closes.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Request {
            method,
            path,
            headers,
            body,
            at: Instant::now(),
        };
        let (status, extra, reply_body) = respond(&request);
        rec.lock().expect("lock").push(request);
        let reply = format!(
            "HTTP/1.1 {status} Answer\r\n{extra}Content-Length: {}\r\nContent-Type: application/json\r\n\r\n{reply_body}",
            reply_body.len()
        );
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

// ----- a tiny SMTP server -------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Mail {
    auth: Vec<String>,
    from: String,
    to: Vec<String>,
    data: String,
}

#[derive(Clone)]
struct SmtpServer {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let rec = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let rec = rec.clone();
                std::thread::spawn(move || serve_smtp(stream, &rec));
            }
        });
        SmtpServer { port, mails }
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }
}

fn serve_smtp(stream: TcpStream, rec: &Mutex<Vec<Mail>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    let mut say = |s: &str| out.write_all(s.as_bytes()).is_ok();
    if !say("220 test.local ESMTP ready\r\n") {
        return;
    }
    let mut mail = Mail::default();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_owned();
        let upper = line.to_ascii_uppercase();
        let ok = if upper.starts_with("EHLO") {
            say("250-test.local\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
        } else if upper.starts_with("HELO") {
            say("250 test.local\r\n")
        } else if upper.starts_with("AUTH") {
            mail.auth.push(line.clone());
            say("235 2.7.0 accepted\r\n")
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line["MAIL FROM:".len()..].trim().to_owned();
            say("250 ok\r\n")
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line["RCPT TO:".len()..].trim().to_owned());
            say("250 ok\r\n")
        } else if upper == "DATA" {
            if !say("354 go ahead\r\n") {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if l.trim_end() == "." {
                    break;
                }
                data.push_str(&l);
            }
            mail.data = data;
            rec.lock().expect("lock").push(std::mem::take(&mut mail));
            say("250 queued\r\n")
        } else if upper == "QUIT" {
            let _ = say("221 bye\r\n");
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            say("250 ok\r\n")
        } else {
            say("502 not implemented\r\n")
        };
        if !ok {
            return;
        }
    }
}

// ----- helpers ------------------------------------------------------------

fn fast(recorder: &RecordingNotifier) -> Delivery {
    let mut d = Delivery::with_desktop(Arc::new(recorder.clone()));
    d.webhook = RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(5),
    };
    d.email_timeout = Duration::from_secs(5);
    d
}

async fn dispatch(engine: &Engine, alert: &Alert, d: &Delivery) -> Vec<DeliveryOutcome> {
    tokio::time::timeout(BOUND, engine.dispatch_alert(alert, d))
        .await
        .expect("the delivery ends in time")
}

pub(crate) fn webhook_rule(project: Option<&str>, url: &str) -> AlertRule {
    AlertRule {
        project_id: project.map(str::to_owned),
        on_failure: true,
        channels: vec![Channel::Webhook {
            url: url.to_owned(),
        }],
        ..AlertRule::default()
    }
}

pub(crate) fn hmac_hex(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn with_project(name: &str) -> (TestEngine, String) {
    let t = unlocked_engine().await;
    let p = t.engine.add_project(input(name, URL)).await.expect("add");
    (t, p.id)
}

fn insert_backup(engine: &Engine, project_id: &str, status: &str, completed_at: DateTime<Utc>) {
    let id = uuid::Uuid::now_v7().to_string();
    let pid = project_id.to_owned();
    let status = status.to_owned();
    let ts = completed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    engine
        .catalog()
        .with(move |c| {
            c.execute(
                "INSERT INTO backups (id, project_id, project_name, project_ref, backup_type, status,
                                      created_at, started_at, completed_at)
                 VALUES (?1, ?2, 'x', 'abcdefghijklmnopqrst', 'full', ?3, ?4, ?4, ?4)",
                rusqlite::params![id, pid, status, ts],
            )?;
            Ok(())
        })
        .expect("insert backup");
}

// ----- webhooks -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_is_signed_and_carries_the_alert() {
    let (t, pid) = with_project("Shop").await;
    let server = HttpServer::start(&[]);
    let rule = t
        .engine
        .save_alert_rule(
            webhook_rule(None, &server.url("/hooks/supabackup")),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("save rule");
    assert!(!rule.id.is_empty());

    let alert = Alert::backup_failed(Some(&pid), "Shop", Some("backup-1"), "disk full");
    let out = dispatch(&t.engine, &alert, &fast(&RecordingNotifier::new())).await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].ok, "{out:?}");
    assert_eq!(out[0].attempts, 1);
    assert_eq!(out[0].channel, "webhook");
    assert_eq!(out[0].rule_id, rule.id);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hooks/supabackup");
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers["user-agent"].starts_with("supabackup/"), "{r:?}");
    assert_eq!(r.headers["x-supabackup-event"], "backup.failed");
    assert!(!r.headers["x-supabackup-delivery"].is_empty());
    let ts = &r.headers["x-supabackup-timestamp"];
    let ts_num: i64 = ts.parse().expect("unix seconds");
    assert!((Utc::now().timestamp() - ts_num).abs() < 60);
    assert_eq!(
        r.headers["x-supabackup-signature"],
        format!("sha256={}", hmac_hex(WEBHOOK_SECRET, ts, &r.body)),
        "the signature verifies with the secret"
    );
    assert_ne!(
        r.headers["x-supabackup-signature"],
        format!("sha256={}", hmac_hex("another secret!!", ts, &r.body))
    );

    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
    assert_eq!(body["event"], "backup.failed");
    assert_eq!(body["project"], "Shop");
    assert_eq!(body["project_id"], pid.as_str());
    assert_eq!(body["title"], "Backup of Shop failed");
    assert!(body["body"].as_str().expect("body").contains("disk full"));
    assert_eq!(body["backup_id"], "backup-1");
    assert!(
        DateTime::parse_from_rfc3339(body["at"].as_str().expect("at")).is_ok(),
        "{body}"
    );
    assert_eq!(body["details"]["error"], "disk full");

    // The secret is nowhere in clear: not sent, not in the data dir.
    assert!(!String::from_utf8_lossy(&r.body).contains(WEBHOOK_SECRET));
    assert!(
        !r.headers.values().any(|v| v.contains(WEBHOOK_SECRET)),
        "{r:?}"
    );
    assert_eq!(
        files_containing(t.dir.path(), WEBHOOK_SECRET.as_bytes()),
        Vec::<String>::new()
    );
    // The delivery is recorded for the dashboards.
    let events = t
        .engine
        .catalog()
        .with(|c| supabackup::engine::catalog::analytics::recent(c, &pid, "alert", 10))
        .expect("analytics");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_data["outcomes"][0]["ok"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_is_retried_after_a_500_but_not_after_a_400() {
    let (t, pid) = with_project("Shop").await;
    let d = fast(&RecordingNotifier::new());
    let alert = Alert::backup_failed(Some(&pid), "Shop", None, "boom");

    let flaky = HttpServer::start(&[500]);
    let rule = t
        .engine
        .save_alert_rule(
            webhook_rule(None, &flaky.url("/h")),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("save");
    let out = dispatch(&t.engine, &alert, &d).await;
    assert!(out[0].ok, "{out:?}");
    assert_eq!(out[0].attempts, 2);
    let reqs = flaky.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].headers["x-supabackup-delivery"], reqs[1].headers["x-supabackup-delivery"],
        "one delivery id across attempts"
    );
    assert_eq!(reqs[0].body, reqs[1].body);

    // A 400 is final. The stored secret is kept: none is given this time.
    let refusing = HttpServer::start(&[400]);
    let mut r = rule.clone();
    r.channels = vec![Channel::Webhook {
        url: refusing.url("/h"),
    }];
    t.engine.save_alert_rule(r, None, None).await.expect("edit");
    let out = dispatch(&t.engine, &alert, &d).await;
    assert!(!out[0].ok);
    assert_eq!(out[0].attempts, 1);
    assert!(
        out[0].error.as_deref().unwrap_or_default().contains("400"),
        "{out:?}"
    );
    assert_eq!(refusing.requests().len(), 1);

    // Always 503: every attempt is used, then it fails.
    let down = HttpServer::start(&[503, 503, 503, 503, 503]);
    let mut r = rule.clone();
    r.channels = vec![Channel::Webhook {
        url: down.url("/h"),
    }];
    t.engine.save_alert_rule(r, None, None).await.expect("edit");
    let out = dispatch(&t.engine, &alert, &d).await;
    assert!(!out[0].ok);
    assert_eq!(out[0].attempts, 4);
    assert_eq!(down.requests().len(), 4);

    // Nothing listening: connection errors are retried too, and end.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut r = rule;
    r.channels = vec![Channel::Webhook {
        url: format!("http://127.0.0.1:{port}/h"),
    }];
    t.engine.save_alert_rule(r, None, None).await.expect("edit");
    let out = dispatch(&t.engine, &alert, &d).await;
    assert!(!out[0].ok);
    assert_eq!(out[0].attempts, 4);
    assert!(
        out[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("connect"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_webhook_to_a_server_without_tls_fails_cleanly() {
    // Something on 127.0.0.1 that answers in plain text and hangs up: the
    // TLS handshake (rustls, aws-lc-rs) fails; every attempt is used.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(Mutex::new(0u32));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            *counter.lock().expect("lock") += 1;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        }
    });
    let (t, pid) = with_project("Shop").await;
    t.engine
        .save_alert_rule(
            webhook_rule(None, &format!("https://127.0.0.1:{port}/h")),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("save");
    let alert = Alert::backup_failed(Some(&pid), "Shop", None, "x");
    let out = dispatch(&t.engine, &alert, &fast(&RecordingNotifier::new())).await;
    assert_eq!(out.len(), 1);
    assert!(!out[0].ok, "{out:?}");
    assert_eq!(out[0].attempts, 4, "{out:?}");
    assert_eq!(*hits.lock().expect("lock"), 4);
    assert!(
        !out[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains(WEBHOOK_SECRET)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_rules_are_checked_when_saved() {
    let t = unlocked_engine().await;
    let plain_http = t
        .engine
        .save_alert_rule(
            webhook_rule(None, "http://hooks.example.com/x"),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect_err("plain http to another host");
    assert_eq!(plain_http.kind, ErrorKind::Invalid);
    assert!(plain_http.message.contains("https://"), "{plain_http}");

    let no_secret = t
        .engine
        .save_alert_rule(
            webhook_rule(None, "https://hooks.example.com/x"),
            None,
            None,
        )
        .await
        .expect_err("a webhook needs a secret");
    assert_eq!(no_secret.kind, ErrorKind::Invalid);

    let short = t
        .engine
        .save_alert_rule(
            webhook_rule(None, "https://hooks.example.com/x"),
            Some(Secret::new("short")),
            None,
        )
        .await
        .expect_err("short secret");
    assert!(!short.message.contains("short\""), "{short}");

    let unknown = t
        .engine
        .save_alert_rule(
            webhook_rule(Some("No Such Project"), "https://hooks.example.com/x"),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect_err("unknown project");
    assert_eq!(unknown.kind, ErrorKind::NotFound);

    // Locked vault: a secret cannot be sealed.
    t.engine.lock();
    let locked = t
        .engine
        .save_alert_rule(
            webhook_rule(None, "https://hooks.example.com/x"),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect_err("locked");
    assert_eq!(locked.kind, ErrorKind::Auth);
    assert!(t.engine.alert_rules().await.expect("rules").is_empty());
}

// ----- e-mail -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_email_reaches_a_local_smtp_server_and_the_password_stays_sealed() {
    let (t, pid) = with_project("Shop").await;
    let smtp = SmtpServer::start();
    let rule = AlertRule {
        name: "ops mail".into(),
        project_id: Some("Shop".into()),
        on_failure: true,
        channels: vec![Channel::Email(EmailChannel {
            smtp_host: "127.0.0.1".into(),
            smtp_port: smtp.port,
            security: SmtpSecurity::None,
            username: Some("alerts".into()),
            from: "Supabackup <backups@example.com>".into(),
            to: vec!["ops@example.com".into(), "dev@example.com".into()],
        })],
        ..AlertRule::default()
    };
    let saved = t
        .engine
        .save_alert_rule(rule, None, Some(Secret::new(SMTP_PASSWORD)))
        .await
        .expect("save");
    assert_eq!(
        saved.project_id.as_deref(),
        Some(pid.as_str()),
        "stored by id"
    );

    let alert = Alert::backup_failed(Some(&pid), "Shop", Some("b-42"), "pg_dump exited with 1");
    let out = dispatch(&t.engine, &alert, &fast(&RecordingNotifier::new())).await;
    assert_eq!(out.len(), 1);
    assert!(out[0].ok, "{out:?}");
    assert_eq!(out[0].channel, "email");

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert!(m.from.contains("backups@example.com"), "{m:?}");
    assert_eq!(m.to.len(), 2, "{m:?}");
    assert!(
        m.data.contains("Subject: Backup of Shop failed"),
        "{}",
        m.data
    );
    assert!(m.data.contains("pg_dump exited with 1"), "{}", m.data);
    assert!(m.data.contains("b-42"), "{}", m.data);
    // The password was opened from the vault for the login...
    assert_eq!(m.auth.len(), 1, "{m:?}");
    let b64 = m.auth[0].trim_start_matches("AUTH PLAIN").trim();
    let plain = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    assert_eq!(plain, format!("\0alerts\0{SMTP_PASSWORD}").into_bytes());
    // ...and is nowhere in clear in the data dir (rules JSON, audit, vault).
    assert_eq!(
        files_containing(t.dir.path(), SMTP_PASSWORD.as_bytes()),
        Vec::<String>::new()
    );
    let rules_json: String = t
        .engine
        .catalog()
        .with(|c| {
            Ok(c.query_row(
                "SELECT value FROM settings WHERE key = 'alerts.rules'",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("rules json");
    assert!(rules_json.contains("ops@example.com"));
    assert!(!rules_json.contains(SMTP_PASSWORD));

    // A refused connection is an outcome, not an error or a hang.
    let mut broken = saved.clone();
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    if let Some(Channel::Email(e)) = broken.channels.first_mut() {
        e.smtp_port = port;
    }
    t.engine
        .save_alert_rule(broken, None, None)
        .await
        .expect("edit keeps the password");
    let out = dispatch(&t.engine, &alert, &fast(&RecordingNotifier::new())).await;
    assert!(!out[0].ok);
    assert!(
        !out[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains(SMTP_PASSWORD)
    );

    // Without encryption only to this machine.
    let mut remote = saved;
    remote.id = String::new();
    if let Some(Channel::Email(e)) = remote.channels.first_mut() {
        e.smtp_host = "smtp.example.com".into();
    }
    let err = t
        .engine
        .save_alert_rule(remote, None, None)
        .await
        .expect_err("plain SMTP to another host");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

// ----- desktop ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_desktop_channel_calls_the_notifier_once() {
    let (t, pid) = with_project("Shop").await;
    for project in [None, Some(pid.clone())] {
        t.engine
            .save_alert_rule(
                AlertRule {
                    project_id: project,
                    on_success: true,
                    channels: vec![Channel::Desktop],
                    ..AlertRule::default()
                },
                None,
                None,
            )
            .await
            .expect("save");
    }
    let recorder = RecordingNotifier::new();
    let alert = Alert::backup_succeeded(Some(&pid), "Shop", "b-1", serde_json::json!({}));
    let out = dispatch(&t.engine, &alert, &fast(&recorder)).await;
    assert_eq!(out.len(), 1, "two rules, one notification: {out:?}");
    assert!(out[0].ok);
    assert_eq!(
        recorder.calls(),
        vec![(
            "Backup of Shop completed".to_owned(),
            "The backup b-1 of Shop completed.".to_owned()
        )]
    );

    // A failing notification service is an outcome, not an error.
    let failing = RecordingNotifier::failing("no notification daemon");
    let out = dispatch(&t.engine, &alert, &fast(&failing)).await;
    assert!(!out[0].ok);
    assert_eq!(out[0].error.as_deref(), Some("no notification daemon"));
    assert_eq!(failing.calls().len(), 1);
}

/// Runs [`desktop_without_a_session_bus_child`] in a child process with no
/// session bus in its environment.
#[test]
fn the_real_notifier_without_a_session_bus_fails_fast() {
    let runtime = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "notify::desktop_without_a_session_bus_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SUPABACKUP_TEST_NO_BUS_CHILD", "1")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(started.elapsed() < BOUND);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by the_real_notifier_without_a_session_bus_fails_fast"]
async fn desktop_without_a_session_bus_child() {
    if std::env::var_os("SUPABACKUP_TEST_NO_BUS_CHILD").is_none() {
        return;
    }
    let started = Instant::now();
    let r = supabackup::engine::notify::desktop::show(
        Arc::new(SystemNotifier),
        "supabackup test",
        "no bus here",
        Duration::from_secs(3),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    if cfg!(target_os = "linux") {
        assert!(r.is_err(), "no session bus, yet {r:?}");
    }

    // Through a rule: an outcome, never a crash.
    let (t, pid) = with_project("Shop").await;
    t.engine
        .save_alert_rule(
            AlertRule {
                on_failure: true,
                channels: vec![Channel::Desktop],
                ..AlertRule::default()
            },
            None,
            None,
        )
        .await
        .expect("save");
    let started = Instant::now();
    let out = dispatch(
        &t.engine,
        &Alert::backup_failed(Some(&pid), "Shop", None, "x"),
        &Delivery::default(),
    )
    .await;
    assert_eq!(out.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    if cfg!(target_os = "linux") {
        assert!(!out[0].ok);
    }
}

// ----- matching -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_goes_to_failure_rules_of_everyone_and_of_its_project_only() {
    let t = unlocked_engine().await;
    let a = t.engine.add_project(input("Alpha", URL)).await.expect("a");
    let b = t.engine.add_project(input("Beta", URL)).await.expect("b");
    let server = HttpServer::start(&[]);
    let secret = || Some(Secret::new(WEBHOOK_SECRET));
    let save = |rule: AlertRule| {
        let e = t.engine.clone();
        async move { e.save_alert_rule(rule, secret(), None).await.expect("save") }
    };
    let global_failure = save(webhook_rule(None, &server.url("/global-failure"))).await;
    let alpha_failure = save(webhook_rule(Some(&a.name), &server.url("/alpha-failure"))).await;
    save(webhook_rule(Some(&b.id), &server.url("/beta-failure"))).await;
    save(AlertRule {
        on_failure: false,
        on_success: true,
        ..webhook_rule(None, &server.url("/global-success"))
    })
    .await;
    save(AlertRule {
        enabled: false,
        ..webhook_rule(None, &server.url("/disabled"))
    })
    .await;
    save(AlertRule {
        on_failure: false,
        on_verification_failure: true,
        ..webhook_rule(Some(&a.id), &server.url("/alpha-verify"))
    })
    .await;
    assert_eq!(t.engine.alert_rules().await.expect("rules").len(), 6);

    let d = fast(&RecordingNotifier::new());
    let out = dispatch(
        &t.engine,
        &Alert::backup_failed(Some(&a.id), "Alpha", None, "x"),
        &d,
    )
    .await;
    let mut paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, vec!["/alpha-failure", "/global-failure"]);
    let mut rules: Vec<String> = out.iter().map(|o| o.rule_id.clone()).collect();
    rules.sort();
    let mut expected = vec![global_failure.id.clone(), alpha_failure.id.clone()];
    expected.sort();
    assert_eq!(rules, expected);
    assert!(out.iter().all(|o| o.ok), "{out:?}");

    // Verification failures go to verification rules only.
    let before = server.requests().len();
    let v = Alert::verification_failed(Some(&a.id), "Alpha", "b-1", "checksum mismatch");
    assert_eq!(v.event, AlertKind::VerificationFailed);
    let out = dispatch(&t.engine, &v, &d).await;
    assert_eq!(out.len(), 1);
    assert_eq!(server.requests()[before].path, "/alpha-verify");

    // A success of Beta: the global success rule only.
    let out = dispatch(
        &t.engine,
        &Alert::backup_succeeded(Some(&b.id), "Beta", "b-2", serde_json::json!({})),
        &d,
    )
    .await;
    assert_eq!(out.len(), 1);
    assert_eq!(
        server.requests().last().expect("req").path,
        "/global-success"
    );

    // Per-project rules are signed with that project's secret if it has one.
    let beta_secret = "whsec-Beta-only-0123456789";
    let mut beta_rule = t
        .engine
        .alert_rules()
        .await
        .expect("rules")
        .into_iter()
        .find(|r| r.project_id.as_deref() == Some(b.id.as_str()))
        .expect("beta rule");
    beta_rule.name = "beta".into();
    t.engine
        .save_alert_rule(beta_rule, Some(Secret::new(beta_secret)), None)
        .await
        .expect("new beta secret");
    dispatch(
        &t.engine,
        &Alert::backup_failed(Some(&b.id), "Beta", None, "y"),
        &d,
    )
    .await;
    let reqs = server.requests();
    let beta_req = reqs
        .iter()
        .rev()
        .find(|r| r.path == "/beta-failure")
        .expect("beta request");
    let ts = &beta_req.headers["x-supabackup-timestamp"];
    assert_eq!(
        beta_req.headers["x-supabackup-signature"],
        format!("sha256={}", hmac_hex(beta_secret, ts, &beta_req.body))
    );
    let global_req = reqs
        .iter()
        .rev()
        .find(|r| r.path == "/global-failure")
        .expect("global request");
    let ts = &global_req.headers["x-supabackup-timestamp"];
    assert_eq!(
        global_req.headers["x-supabackup-signature"],
        format!("sha256={}", hmac_hex(WEBHOOK_SECRET, ts, &global_req.body))
    );

    // A removed project's rules disappear with it.
    t.engine.remove_project(&b.id).await.expect("remove beta");
    assert_eq!(t.engine.alert_rules().await.expect("rules").len(), 5);
}

// ----- stale backups ------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn stale_projects_are_reported_once_per_stale_period() {
    let t = unlocked_engine().await;
    let old = t.engine.add_project(input("Old", URL)).await.expect("old");
    let fresh = t
        .engine
        .add_project(input("Fresh", URL))
        .await
        .expect("fresh");
    let never = t
        .engine
        .add_project(input("Never", URL))
        .await
        .expect("never");
    let now = Utc::now();
    let hours = |h: i64| chrono::Duration::hours(h);
    insert_backup(&t.engine, &old.id, "completed", now - hours(30));
    insert_backup(&t.engine, &old.id, "failed", now - hours(1));
    insert_backup(&t.engine, &fresh.id, "completed", now - hours(100));
    insert_backup(&t.engine, &fresh.id, "completed", now - hours(2));

    // No rule with a threshold: nothing is stale.
    assert!(t.engine.stale_alerts(now).await.expect("stale").is_empty());

    let rule = t
        .engine
        .save_alert_rule(
            AlertRule {
                stale_after_hours: Some(24),
                channels: vec![Channel::Desktop],
                ..AlertRule::default()
            },
            None,
            None,
        )
        .await
        .expect("save");
    let stale = t.engine.stale_alerts(now).await.expect("stale");
    assert_eq!(stale.len(), 1, "{stale:?}");
    let s = &stale[0];
    assert_eq!(s.event, AlertKind::BackupStale);
    assert_eq!(s.project_id.as_deref(), Some(old.id.as_str()));
    assert_eq!(s.details["age_hours"], 30);
    assert_eq!(s.details["threshold_hours"], 24);
    assert!(s.details["last_success_at"].is_string());
    assert!(rule.matches(s));

    // Days later everything is stale, the never-backed-up project included.
    let later = now + hours(100);
    let stale = t.engine.stale_alerts(later).await.expect("stale");
    let names: Vec<_> = stale.iter().filter_map(|a| a.project.clone()).collect();
    assert_eq!(names, vec!["Fresh", "Never", "Old"]);
    let n = stale
        .iter()
        .find(|a| a.project_id.as_deref() == Some(never.id.as_str()))
        .expect("never");
    assert!(n.details["last_success_at"].is_null());

    // The scheduler's check alerts once per stale period.
    let recorder = RecordingNotifier::new();
    let d = fast(&recorder);
    let out = t.engine.check_stale(now, &d).await.expect("check");
    assert_eq!(out.len(), 1);
    assert_eq!(recorder.calls().len(), 1);
    assert!(recorder.calls()[0].0.contains("Old"));
    let out = t
        .engine
        .check_stale(now + hours(1), &d)
        .await
        .expect("again");
    assert!(out.is_empty(), "already alerted: {out:?}");
    assert_eq!(recorder.calls().len(), 1);

    // A new success ends the period; when it goes stale, it is alerted again.
    insert_backup(&t.engine, &old.id, "completed", now + hours(2));
    let out = t
        .engine
        .check_stale(now + hours(3), &d)
        .await
        .expect("fresh");
    assert!(out.is_empty());
    insert_backup(&t.engine, &fresh.id, "completed", now + hours(20));
    insert_backup(&t.engine, &never.id, "completed", now + hours(20));
    let out = t
        .engine
        .check_stale(now + hours(27), &d)
        .await
        .expect("stale again");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(recorder.calls().len(), 2);

    // A stricter project rule fires earlier, for its project only.
    let server = HttpServer::start(&[]);
    t.engine
        .save_alert_rule(
            AlertRule {
                project_id: Some(fresh.id.clone()),
                stale_after_hours: Some(1),
                channels: vec![Channel::Webhook {
                    url: server.url("/fresh-stale"),
                }],
                ..AlertRule::default()
            },
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("project rule");
    let stale = t.engine.stale_alerts(now + hours(21)).await.expect("stale");
    let fresh_alert = stale
        .iter()
        .find(|a| a.project_id.as_deref() == Some(fresh.id.as_str()))
        .expect("fresh is stale for its 1 h rule");
    assert!(
        !rule.matches(fresh_alert),
        "1 h is not stale for the 24 h rule"
    );
    let out = dispatch(&t.engine, fresh_alert, &d).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].channel, "webhook");
    let body: serde_json::Value = serde_json::from_slice(&server.requests()[0].body).expect("json");
    assert_eq!(body["event"], "backup.stale");
    assert_eq!(body["details"]["threshold_hours"], 1);
}

// ----- test alert, removal ------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_test_alert_uses_every_channel_and_removal_drops_the_secret() {
    let t = unlocked_engine().await;
    let server = HttpServer::start(&[]);
    let rule = t
        .engine
        .save_alert_rule(
            AlertRule {
                name: "ops".into(),
                enabled: false,
                stale_after_hours: Some(48),
                channels: vec![
                    Channel::Desktop,
                    Channel::Webhook {
                        url: server.url("/test"),
                    },
                ],
                ..AlertRule::default()
            },
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("save");
    let recorder = RecordingNotifier::new();
    let out = tokio::time::timeout(BOUND, t.engine.send_test_alert(&rule.id, &fast(&recorder)))
        .await
        .expect("in time")
        .expect("test alert");
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|o| o.ok), "{out:?}");
    assert_eq!(recorder.calls().len(), 1);
    assert!(recorder.calls()[0].0.contains("test"));
    assert_eq!(server.requests()[0].headers["x-supabackup-event"], "test");

    let err = t
        .engine
        .send_test_alert("nope", &fast(&recorder))
        .await
        .expect_err("unknown rule");
    assert_eq!(err.kind, ErrorKind::NotFound);

    let count = |e: &Engine| {
        e.catalog()
            .with(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM secrets WHERE kind = 'webhook_secret'",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .expect("count")
    };
    assert_eq!(count(&t.engine), 1);
    t.engine.remove_alert_rule(&rule.id).await.expect("remove");
    assert_eq!(count(&t.engine), 0, "no rule needs the secret any more");
    assert!(t.engine.alert_rules().await.expect("rules").is_empty());
    let audit = t
        .engine
        .audit_log(Some("alert.".into()), 10)
        .await
        .expect("audit");
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "alert.rule_remove",
            "alert.test",
            "alert.sent",
            "alert.sent",
            "alert.rule_save"
        ],
        "each channel's send is audited"
    );
}

// ----- every front-end's outcomes reach the rules ----------------------------

/// The signed `backup.failed` / `verification.failed` webhook a rule got.
pub(crate) fn one_signed_event(server: &HttpServer, event: &str) -> serde_json::Value {
    let reqs = server.requests();
    let hits: Vec<&Request> = reqs
        .iter()
        .filter(|r| r.headers.get("x-supabackup-event").map(String::as_str) == Some(event))
        .collect();
    assert_eq!(hits.len(), 1, "one {event} webhook: {reqs:?}");
    let r = hits[0];
    let ts = &r.headers["x-supabackup-timestamp"];
    assert_eq!(
        r.headers["x-supabackup-signature"],
        format!("sha256={}", hmac_hex(WEBHOOK_SECRET, ts, &r.body))
    );
    serde_json::from_slice(&r.body).expect("json body")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_backup_that_fails_reaches_the_failure_rules() {
    let t = unlocked_engine().await;
    // Nothing listens on the discard port.
    let p = t
        .engine
        .add_project(input("Down", "postgresql://postgres@127.0.0.1:9/postgres"))
        .await
        .expect("add");
    let server = HttpServer::start(&[]);
    t.engine
        .save_alert_rule(
            webhook_rule(None, &server.url("/hooks")),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("rule");
    let err = t
        .engine
        .run_backup(
            supabackup::engine::backup::BackupRequest {
                no_hooks: false,
                project: "Down".into(),
                options: supabackup::engine::backup::BackupOptions {
                    encrypt: false,
                    ..Default::default()
                },
                job_id: None,
                store: Default::default(),
            },
            Arc::new(|_| {}),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect_err("unreachable");
    let body = one_signed_event(&server, "backup.failed");
    assert_eq!(body["project_id"], p.id.as_str());
    assert_eq!(body["details"]["error"], err.message.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verify_that_finds_a_flipped_byte_raises_verification_failed() {
    let src = crate::support::pg::cluster().create_db("nt_verify");
    src.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;");
    let t = crate::backup::engine_for(&src, "Checked").await;
    let server = HttpServer::start(&[]);
    t.engine
        .save_alert_rule(
            AlertRule {
                on_failure: false,
                on_verification_failure: true,
                ..webhook_rule(None, &server.url("/hooks"))
            },
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("rule");
    let rec = crate::backup::backup(&t.engine, "Checked", Default::default()).await;
    assert!(t.engine.verify_backup(&rec.id).await.expect("verify").ok);
    assert!(
        server.requests().is_empty(),
        "a passing verify raises nothing"
    );
    let dir = std::path::PathBuf::from(rec.file_path.clone().expect("folder"));
    let dir = if dir.is_absolute() {
        dir
    } else {
        t.dir.path().join(dir)
    };
    let data = std::fs::read_dir(&dir)
        .expect("folder")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("data"))
        })
        .expect("data file");
    let mut bytes = std::fs::read(&data).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&data, bytes).expect("write");
    let report = t.engine.verify_backup(&rec.id).await.expect("report");
    assert!(!report.ok);
    let body = one_signed_event(&server, "verification.failed");
    assert_eq!(body["backup_id"], rec.id.as_str());
    assert_eq!(body["project"], "Checked");
}

// ----- chat formats, Retry-After, the audit of sends -------------------------

const SLACK_PATH: &str = "/services/T0001/B0001/SlackS3cretPart";
const TELEGRAM_TOKEN: &str = "123456789:TelegramS3cretToken_abcdefghijkl";

fn chat_rule(service: ChatService, chat_id: Option<&str>, api: Option<String>) -> AlertRule {
    AlertRule {
        on_failure: true,
        channels: vec![Channel::Chat(ChatChannel {
            service,
            chat_id: chat_id.map(str::to_owned),
            api_base: api,
        })],
        ..AlertRule::default()
    }
}

async fn save_chat(t: &TestEngine, rule: AlertRule, service: ChatService, secret: &str) {
    t.engine
        .save_alert_rule_with(
            rule,
            RuleSecrets {
                chat: vec![(service, Secret::new(secret))],
                ..RuleSecrets::default()
            },
        )
        .await
        .expect("save chat rule");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_channels_post_each_services_format_and_keep_their_urls_sealed() {
    let (t, pid) = with_project("Shop").await;
    let server = HttpServer::start(&[]);
    // A chat rule needs its secret, and the secret must look right.
    let err = t
        .engine
        .save_alert_rule(chat_rule(ChatService::Slack, None, None), None, None)
        .await
        .expect_err("no URL");
    assert!(err.message.contains("Slack"), "{err}");
    let err = t
        .engine
        .save_alert_rule_with(
            chat_rule(ChatService::Telegram, Some("-10042"), None),
            RuleSecrets {
                chat: vec![(ChatService::Telegram, Secret::new("not a token"))],
                ..RuleSecrets::default()
            },
        )
        .await
        .expect_err("bad token");
    assert!(err.message.contains("token"), "{err}");
    let err = t
        .engine
        .save_alert_rule_with(
            chat_rule(ChatService::Telegram, None, None),
            RuleSecrets::default(),
        )
        .await
        .expect_err("no chat id");
    assert!(err.message.contains("chat id"), "{err}");

    save_chat(
        &t,
        chat_rule(ChatService::Slack, None, None),
        ChatService::Slack,
        &server.url(SLACK_PATH),
    )
    .await;
    save_chat(
        &t,
        chat_rule(ChatService::Discord, None, None),
        ChatService::Discord,
        &server.url("/api/webhooks/42/DiscordS3cretPart"),
    )
    .await;
    save_chat(
        &t,
        chat_rule(ChatService::Teams, None, None),
        ChatService::Teams,
        &server.url("/workflows/TeamsS3cretPart"),
    )
    .await;
    save_chat(
        &t,
        chat_rule(ChatService::Telegram, Some("-10042"), Some(server.url(""))),
        ChatService::Telegram,
        TELEGRAM_TOKEN,
    )
    .await;

    let alert = Alert::backup_failed(Some(&pid), "Shop", Some("backup-1"), "disk full");
    let out = dispatch(&t.engine, &alert, &fast(&RecordingNotifier::new())).await;
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(out.iter().all(|o| o.ok), "{out:?}");
    let mut kinds: Vec<&str> = out.iter().map(|o| o.channel.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["discord", "slack", "teams", "telegram"]);

    let reqs = server.requests();
    let body = |path: &str| -> serde_json::Value {
        let r = reqs
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("nothing posted to {path}: {reqs:?}"));
        assert_eq!(r.method, "POST");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(
            !r.headers.contains_key("x-supabackup-signature"),
            "chat webhooks are not signed"
        );
        serde_json::from_slice(&r.body).expect("json")
    };
    let slack = body(SLACK_PATH);
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.contains("Backup of Shop failed") && t.contains("disk full")),
        "{slack}"
    );
    let discord = body("/api/webhooks/42/DiscordS3cretPart");
    assert_eq!(discord["embeds"][0]["title"], "Backup of Shop failed");
    let teams = body("/workflows/TeamsS3cretPart");
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let tg = body(&format!("/bot{TELEGRAM_TOKEN}/sendMessage"));
    assert_eq!(tg["chat_id"], "-10042");
    assert!(tg["text"].as_str().is_some_and(|t| t.contains("disk full")));

    // The URLs and the token are credentials: not in outcomes, rules, the
    // audit log, analytics or any file of the data folder.
    let shown = serde_json::to_string(&out).expect("json");
    let rules = serde_json::to_string(&t.engine.alert_rules().await.expect("rules")).expect("json");
    let audit = t
        .engine
        .audit_log(Some("alert.".into()), 50)
        .await
        .expect("audit");
    let sent = audit.iter().filter(|a| a.action == "alert.sent").count();
    assert_eq!(sent, 4, "every send is audited");
    let audit_text = serde_json::to_string(&audit).expect("json");
    for secret in [
        "SlackS3cretPart",
        "DiscordS3cretPart",
        "TeamsS3cretPart",
        "TelegramS3cretToken",
    ] {
        for (what, text) in [
            ("outcomes", &shown),
            ("rules", &rules),
            ("audit", &audit_text),
        ] {
            assert!(!text.contains(secret), "{secret} in the {what}: {text}");
        }
        assert!(
            files_containing(t.dir.path(), secret.as_bytes()).is_empty(),
            "{secret} in clear in the data folder"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_waited_and_a_too_long_one_ends_the_retries() {
    let (t, pid) = with_project("Shop").await;
    let server = HttpServer::scripted(&[(429, Some("1")), (200, None)]);
    t.engine
        .save_alert_rule(
            webhook_rule(None, &server.url("/hooks")),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("rule");
    let alert = Alert::backup_failed(Some(&pid), "Shop", None, "x");
    let d = fast(&RecordingNotifier::new());
    let out = dispatch(&t.engine, &alert, &d).await;
    assert!(out[0].ok, "{out:?}");
    assert_eq!(out[0].attempts, 2);
    let reqs = server.requests();
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(950),
        "the second attempt waited for Retry-After: {:?}",
        reqs[1].at - reqs[0].at
    );
    assert_eq!(
        reqs[0].headers["x-supabackup-delivery"], reqs[1].headers["x-supabackup-delivery"],
        "one delivery id for every attempt"
    );

    // Asked to wait an hour (more than the policy's 5 s): no more attempts.
    let slow = HttpServer::scripted(&[(503, Some("3600"))]);
    let (t2, pid2) = with_project("Other").await;
    let rule = t2
        .engine
        .save_alert_rule(
            webhook_rule(None, &slow.url("/hooks")),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("rule");
    let started = Instant::now();
    let out = dispatch(
        &t2.engine,
        &Alert::backup_failed(Some(&pid2), "Other", None, "x"),
        &d,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!out[0].ok);
    assert_eq!(out[0].attempts, 1);
    let e = out[0].error.as_deref().unwrap_or_default();
    assert!(e.contains("503") && e.contains("3600"), "{e}");
    let audit = t2
        .engine
        .audit_log(Some("alert.failed".into()), 5)
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1, "the failed send is audited");
    assert_eq!(audit[0].target.as_deref(), Some(rule.id.as_str()));
    assert_eq!(audit[0].details["event"], "backup.failed");
    assert!(
        audit[0].details["error"]
            .as_str()
            .is_some_and(|x| x.contains("3600"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_cli_backup_of_an_unreachable_project_reaches_a_webhook_and_a_slack_rule() {
    let t = unlocked_engine().await;
    let p = t
        .engine
        .add_project(input("Down", "postgresql://postgres@127.0.0.1:9/postgres"))
        .await
        .expect("add");
    let server = HttpServer::start(&[]);
    t.engine
        .save_alert_rule(
            webhook_rule(None, &server.url("/hooks")),
            Some(Secret::new(WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("rule");
    drop(t.engine);
    // The Slack rule is added through the CLI, its URL from the environment.
    let slack_url = server.url(SLACK_PATH);
    let env = [
        ("SUPABACKUP_PASSPHRASE", crate::support::engine::PASSPHRASE),
        ("SUPABACKUP_SLACK_WEBHOOK_URL", slack_url.as_str()),
    ];
    let out = crate::support::engine::cli(
        t.dir.path(),
        &["alert", "add", "--on-failure", "--slack", "--name", "ops"],
        &env,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crate::support::engine::cli(
        t.dir.path(),
        &["backup", "run", "Down", "--no-encrypt"],
        &env,
        None,
    );
    assert!(!out.status.success(), "the backup cannot connect");
    let body = one_signed_event(&server, "backup.failed");
    assert_eq!(body["project_id"], p.id.as_str());
    let slack: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == SLACK_PATH)
        .collect();
    assert_eq!(slack.len(), 1, "one Slack message");
    let msg: serde_json::Value = serde_json::from_slice(&slack[0].body).expect("json");
    assert!(
        msg["text"]
            .as_str()
            .is_some_and(|t| t.contains("Backup of Down failed")),
        "{msg}"
    );
    let list = crate::support::engine::cli(t.dir.path(), &["alert", "list"], &env, None);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("slack"), "{text}");
    assert!(!text.contains("SlackS3cretPart"), "{text}");
}
