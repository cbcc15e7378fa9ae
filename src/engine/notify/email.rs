//! E-mail alerts over SMTP (lettre on tokio, rustls with the aws-lc-rs
//! provider): implicit TLS, required STARTTLS, or — to a relay on this
//! machine only — no encryption. A plain-text message.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::Alert;
use super::rules::{EmailChannel, SmtpSecurity};
use crate::engine::crypto::Secret;

fn mailbox(what: &str, raw: &str) -> Result<Mailbox, String> {
    raw.parse::<Mailbox>()
        .map_err(|e| format!("the {what} address '{raw}' is not valid: {e}"))
}

/// Builds the message for `alert` (subject = title, text body).
pub fn message(channel: &EmailChannel, alert: &Alert) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(mailbox("sender", &channel.from)?)
        .subject(&alert.title)
        .header(ContentType::TEXT_PLAIN);
    for to in &channel.to {
        builder = builder.to(mailbox("recipient", to)?);
    }
    builder
        .body(alert.text())
        .map_err(|e| format!("the e-mail could not be built: {e}"))
}

/// Sends `alert` through `channel`; `password` is the scope's SMTP password
/// when the channel has a user name. `timeout` applies to each SMTP step;
/// the whole send gets twice as long.
pub async fn send(
    channel: &EmailChannel,
    password: Option<&Secret>,
    alert: &Alert,
    timeout: Duration,
) -> Result<(), String> {
    let msg = message(channel, alert)?;
    let host = channel.smtp_host.as_str();
    let builder = match channel.security {
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            host,
        )),
    }
    .map_err(|e| format!("the TLS settings for {host} could not be prepared: {e}"))?;
    let mut builder = builder.port(channel.smtp_port).timeout(Some(timeout));
    if let (Some(user), Some(pw)) = (&channel.username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_owned()));
    }
    let transport = builder.build();
    let target = format!(
        "{host}:{} ({})",
        channel.smtp_port,
        channel.security.as_str()
    );
    match tokio::time::timeout(timeout.saturating_mul(2), transport.send(msg)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("sending through {target} failed: {}", chain(&e))),
        Err(_) => Err(format!(
            "sending through {target} took longer than {} s",
            timeout.saturating_mul(2).as_secs()
        )),
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::notify::AlertKind;

    #[test]
    fn tls_transports_build_with_the_aws_lc_rs_provider() {
        // Builds the rustls settings (provider, platform verifier) without
        // connecting anywhere.
        assert!(AsyncSmtpTransport::<Tokio1Executor>::relay("smtp.example.com").is_ok());
        assert!(AsyncSmtpTransport::<Tokio1Executor>::starttls_relay("smtp.example.com").is_ok());
    }

    #[test]
    fn the_message_has_the_title_and_the_body() {
        let channel = EmailChannel {
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            security: SmtpSecurity::None,
            username: None,
            from: "Backups <backups@example.com>".into(),
            to: vec!["ops@example.com".into(), "dev@example.com".into()],
        };
        let alert = Alert {
            event: AlertKind::BackupFailed,
            project: Some("Shop".into()),
            project_id: None,
            title: "Backup of Shop failed".into(),
            body: "disk full".into(),
            backup_id: None,
            at: "2025-01-01T00:00:00.000Z".into(),
            details: serde_json::json!({}),
        };
        let raw =
            String::from_utf8(message(&channel, &alert).expect("msg").formatted()).expect("utf8");
        assert!(raw.contains("Subject: Backup of Shop failed"), "{raw}");
        assert!(raw.contains("disk full"), "{raw}");
        assert!(raw.contains("dev@example.com"), "{raw}");
    }
}
