//! Webhooks: an HTTPS POST of the alert as JSON, signed with HMAC-SHA256
//! over `"<timestamp>.<body>"` under the scope's secret, retried with
//! exponential backoff on connection errors, timeouts, 5xx and 429.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Alert;
use crate::engine::crypto::{self, Secret};

pub const HEADER_EVENT: &str = "X-Supabackup-Event";
pub const HEADER_TIMESTAMP: &str = "X-Supabackup-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Supabackup-Signature";
/// The same for every attempt of one delivery, so receivers can drop repeats.
pub const HEADER_DELIVERY: &str = "X-Supabackup-Delivery";

/// How a webhook is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The wait after the first failed attempt; it doubles each time, and
    /// each wait is jittered (between half and one and a half times it) so
    /// many senders do not retry in step.
    pub base_delay: Duration,
    /// The limit for one attempt (connecting, sending, the answer).
    pub timeout: Duration,
    /// The longest `Retry-After` honoured; an endpoint asking for a longer
    /// wait gets no more attempts (the delivery fails, saying so).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, waiting about 0.5 s, 1 s and 2 s between them (or what
    /// `Retry-After` asks, up to 60 s); 10 s each.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based), before jitter.
    pub fn delay_after(&self, n: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
    }
}

/// `delay` scaled by a factor between 0.5 and 1.5 drawn from `random`.
pub fn jittered(delay: Duration, random: u32) -> Duration {
    let factor = 0.5 + f64::from(random) / f64::from(u32::MAX);
    delay.mul_f64(factor)
}

/// A `Retry-After` header: delay-seconds, or an HTTP date (then the wait
/// until it, from `now`). `None` when absent or unreadable.
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The `X-Supabackup-Signature` value: `sha256=` and the lower-case hex
/// HMAC-SHA256 of `"<timestamp>.<body>"` keyed with the secret.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this never fails.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", crypto::hex(&mac.finalize().into_bytes()))
}

/// Checks a signature header in constant time (for receivers written in
/// Rust, and tests).
pub fn verify_signature(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = unhex(hex) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The body sent: the alert as compact JSON.
pub fn payload(alert: &Alert) -> Vec<u8> {
    serde_json::to_vec(alert).unwrap_or_default()
}

/// What a webhook delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub attempts: u32,
    /// `None` when the endpoint answered 2xx.
    pub error: Option<String>,
}

enum Attempt {
    Done,
    Retry(String),
    Fail(String),
}

pub(crate) fn is_local(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The reasons behind a reqwest error, without the URL (the caller names it).
pub(crate) fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f32());
    }
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    let head = if err.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    if parts.is_empty() {
        head.to_owned()
    } else {
        format!("{head}: {}", parts.join(": "))
    }
}

/// POSTs `alert` to `url`, signed with `secret`, retrying per `policy`.
pub async fn send(url: &str, secret: &Secret, alert: &Alert, policy: &RetryPolicy) -> Sent {
    let body = payload(alert);
    let delivery_id = uuid::Uuid::new_v4().to_string();
    let event = alert.event.as_str();
    post(url, policy, &[], |req| {
        let timestamp = chrono::Utc::now().timestamp();
        req.header(HEADER_EVENT, event)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_DELIVERY, delivery_id.as_str())
            .header(
                HEADER_SIGNATURE,
                signature(secret.expose().as_bytes(), timestamp, &body),
            )
            .body(body.clone())
    })
    .await
}

/// POSTs JSON to `url`, building each attempt's request with `build` (it
/// adds the headers and the body), retrying per `policy` on connection
/// errors, timeouts, 5xx and 429 — after the answer's `Retry-After` when it
/// gives one, else after a jittered exponential backoff. Each string of
/// `hide` is blanked out of any error (a URL that is itself a secret).
pub async fn post(
    url: &str,
    policy: &RetryPolicy,
    hide: &[&str],
    build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Sent {
    let scrub = |mut e: String| {
        for h in hide.iter().filter(|h| !h.is_empty()) {
            e = e.replace(h, "[redacted]");
        }
        e
    };
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            return Sent {
                attempts: 0,
                error: Some(scrub(format!("the webhook URL is not valid: {e}"))),
            };
        }
    };
    let mut builder = reqwest::Client::builder()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("supabackup/", env!("CARGO_PKG_VERSION")));
    if is_local(&parsed) {
        builder = builder.no_proxy();
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            return Sent {
                attempts: 0,
                error: Some(format!(
                    "the HTTP client could not be set up: {}",
                    describe(&e, policy.timeout)
                )),
            };
        }
    };
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for n in 1..=attempts {
        let request = build(
            client
                .post(parsed.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json"),
        );
        let mut asked_wait = None;
        let result = match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Attempt::Done
                } else if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    asked_wait = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry_after(v, chrono::Utc::now()));
                    Attempt::Retry(format!("the endpoint answered HTTP {status}"))
                } else {
                    Attempt::Fail(format!("the endpoint answered HTTP {status}"))
                }
            }
            Err(e) if e.is_builder() => Attempt::Fail(describe(&e, policy.timeout)),
            Err(e) => Attempt::Retry(describe(&e, policy.timeout)),
        };
        match result {
            Attempt::Done => {
                return Sent {
                    attempts: n,
                    error: None,
                };
            }
            Attempt::Fail(e) => {
                return Sent {
                    attempts: n,
                    error: Some(scrub(e)),
                };
            }
            Attempt::Retry(e) => {
                tracing::debug!(
                    "webhook attempt {n}/{attempts} failed: {}",
                    scrub(e.clone())
                );
                last = e;
                if n == attempts {
                    break;
                }
                let wait = match asked_wait {
                    Some(w) if w > policy.max_retry_after => {
                        return Sent {
                            attempts: n,
                            error: Some(scrub(format!(
                                "{last}, asking to retry after {} s (more than the {} s waited at most)",
                                w.as_secs(),
                                policy.max_retry_after.as_secs()
                            ))),
                        };
                    }
                    Some(w) => w,
                    None => jittered(
                        policy.delay_after(n),
                        getrandom::u32().unwrap_or(u32::MAX / 2),
                    ),
                };
                tokio::time::sleep(wait).await;
            }
        }
    }
    Sent {
        attempts,
        error: Some(scrub(format!("{last} (after {attempts} attempts)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector_and_verifies() {
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), "sha256=".len() + 64);
        assert!(verify_signature(
            b"Jefe",
            0,
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_signature(
            b"Jefe",
            1,
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_signature(
            b"jefe",
            0,
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_signature(b"Jefe", 0, b"x", "sha256=zz"));
        assert!(!verify_signature(b"Jefe", 0, b"x", "md5=00"));
    }

    #[test]
    fn rfc4231_vector_through_the_same_mac() {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            crypto::hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_and_jitters_within_half_to_one_and_a_half() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1), Duration::from_millis(500));
        assert_eq!(p.delay_after(2), Duration::from_secs(1));
        assert_eq!(p.delay_after(3), Duration::from_secs(2));
        let d = Duration::from_secs(2);
        assert_eq!(jittered(d, 0), Duration::from_secs(1));
        assert_eq!(jittered(d, u32::MAX), Duration::from_secs(3));
        let mid = jittered(d, u32::MAX / 2);
        assert!(mid > Duration::from_millis(1990) && mid < Duration::from_millis(2010));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Thu, 03 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past: retry at once.
        assert_eq!(
            retry_after("Thu, 03 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-3", now), None);
    }
}
