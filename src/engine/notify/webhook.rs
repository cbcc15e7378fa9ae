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
    /// The wait after the first failed attempt; it doubles each time.
    pub base_delay: Duration,
    /// The limit for one attempt (connecting, sending, the answer).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, waiting 0.5 s, 1 s and 2 s between them; 10 s each.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based).
    pub fn delay_after(&self, n: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
    }
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

fn is_local(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The reasons behind a reqwest error, without the URL (the caller names it).
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
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
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            return Sent {
                attempts: 0,
                error: Some(format!("the webhook URL is not valid: {e}")),
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
    let body = payload(alert);
    let delivery_id = uuid::Uuid::new_v4().to_string();
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for n in 1..=attempts {
        let timestamp = chrono::Utc::now().timestamp();
        let request = client
            .post(parsed.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, alert.event.as_str())
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_DELIVERY, delivery_id.as_str())
            .header(
                HEADER_SIGNATURE,
                signature(secret.expose().as_bytes(), timestamp, &body),
            )
            .body(body.clone());
        let result = match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Attempt::Done
                } else if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                {
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
                    error: Some(e),
                };
            }
            Attempt::Retry(e) => {
                tracing::debug!("webhook attempt {n}/{attempts} failed: {e}");
                last = e;
                if n < attempts {
                    tokio::time::sleep(policy.delay_after(n)).await;
                }
            }
        }
    }
    Sent {
        attempts,
        error: Some(format!("{last} (after {attempts} attempts)")),
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
    fn backoff_doubles() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1), Duration::from_millis(500));
        assert_eq!(p.delay_after(2), Duration::from_secs(1));
        assert_eq!(p.delay_after(3), Duration::from_secs(2));
    }
}
