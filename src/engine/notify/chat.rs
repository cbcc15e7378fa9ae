//! Chat channels: the alert as the message format each service's incoming
//! webhook takes — Slack (`text` with mrkdwn), Discord (an embed), Microsoft
//! Teams (an Adaptive Card, as Workflows webhooks take it) and Telegram (the
//! Bot API's `sendMessage`). Sent with the webhooks' retries; the URL or bot
//! token is a credential, so it never appears in an outcome or a log.

use serde_json::{Value, json};

use super::rules::{ChatChannel, ChatService, TELEGRAM_API};
use super::webhook::{self, RetryPolicy, Sent};
use super::{Alert, AlertKind};
use crate::engine::crypto::Secret;

/// Discord refuses embed descriptions over 4096 characters, Slack
/// truncates long texts and Telegram stops at 4096: every body is cut to
/// this many characters.
const MAX_BODY_CHARS: usize = 3000;

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_BODY_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_BODY_CHARS - 1).collect();
    out.push('…');
    out
}

/// Whether the event is bad news (red) or good news (green).
fn is_failure(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::BackupFailed
            | AlertKind::BackupStale
            | AlertKind::VerificationFailed
            | AlertKind::RestoreFailed
            | AlertKind::RollbackFailed
            | AlertKind::PruneFailed
            | AlertKind::ScheduleMissed
            | AlertKind::HealthUnreachable
            | AlertKind::HealthSizeGrew
            | AlertKind::HealthPgDumpMissing
    )
}

/// The facts under the body: event, project, backup, time.
fn facts(alert: &Alert) -> Vec<(&'static str, String)> {
    let mut out = vec![("Event", alert.event.as_str().to_owned())];
    if let Some(p) = &alert.project {
        out.push(("Project", p.clone()));
    }
    if let Some(b) = &alert.backup_id {
        out.push(("Backup", b.clone()));
    }
    out.push(("At", alert.at.clone()));
    out
}

/// Slack's mrkdwn escapes only these three.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Telegram's HTML parse mode escapes the same three.
fn html_escape(s: &str) -> String {
    slack_escape(s)
}

/// The JSON body for `service`; `chat_id` is Telegram's.
pub fn payload(service: ChatService, alert: &Alert, chat_id: Option<&str>) -> Value {
    let body = cut(&alert.body);
    let facts = facts(alert);
    match service {
        ChatService::Slack => {
            let icon = if is_failure(alert.event) {
                ":red_circle:"
            } else {
                ":large_green_circle:"
            };
            let context: Vec<String> = facts
                .iter()
                .map(|(k, v)| format!("*{k}:* {}", slack_escape(v)))
                .collect();
            json!({
                "text": format!("{icon} *{}*\n{}", slack_escape(&alert.title), slack_escape(&body)),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": format!("{icon} *{}*\n{}", slack_escape(&alert.title), slack_escape(&body))}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": context.join("   ")}]}
                ]
            })
        }
        ChatService::Discord => {
            let color = if is_failure(alert.event) {
                0xD9_2D_20
            } else {
                0x2E_A0_43
            };
            let fields: Vec<Value> = facts
                .iter()
                .filter(|(k, _)| *k != "At")
                .map(|(k, v)| json!({"name": k, "value": v, "inline": true}))
                .collect();
            json!({
                "username": "supabackup",
                "allowed_mentions": {"parse": []},
                "embeds": [{
                    "title": alert.title,
                    "description": body,
                    "color": color,
                    "fields": fields,
                    "timestamp": alert.at,
                }]
            })
        }
        ChatService::Teams => {
            let facts: Vec<Value> = facts
                .iter()
                .map(|(k, v)| json!({"title": k, "value": v}))
                .collect();
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": alert.title, "weight": "Bolder",
                             "size": "Medium", "wrap": true,
                             "color": if is_failure(alert.event) { "Attention" } else { "Good" }},
                            {"type": "TextBlock", "text": body, "wrap": true},
                            {"type": "FactSet", "facts": facts}
                        ]
                    }
                }]
            })
        }
        ChatService::Telegram => {
            let lines: Vec<String> = facts
                .iter()
                .map(|(k, v)| format!("<b>{k}:</b> {}", html_escape(v)))
                .collect();
            json!({
                "chat_id": chat_id.unwrap_or_default(),
                "parse_mode": "HTML",
                "disable_web_page_preview": true,
                "text": format!("<b>{}</b>\n{}\n\n{}", html_escape(&alert.title), html_escape(&body), lines.join("\n")),
            })
        }
    }
}

/// Where the message is POSTed: the webhook URL itself, or Telegram's
/// `sendMessage` under the bot token.
fn endpoint(channel: &ChatChannel, secret: &Secret) -> String {
    match channel.service {
        ChatService::Telegram => format!(
            "{}/bot{}/sendMessage",
            channel.api_base.as_deref().unwrap_or(TELEGRAM_API),
            secret.expose().trim()
        ),
        _ => secret.expose().trim().to_owned(),
    }
}

/// Posts `alert` to the chat, retrying per `policy`.
pub async fn send(
    channel: &ChatChannel,
    secret: &Secret,
    alert: &Alert,
    policy: &RetryPolicy,
) -> Sent {
    let body =
        match serde_json::to_vec(&payload(channel.service, alert, channel.chat_id.as_deref())) {
            Ok(b) => b,
            Err(e) => {
                return Sent {
                    attempts: 0,
                    error: Some(format!("the message could not be built: {e}")),
                };
            }
        };
    let url = endpoint(channel, secret);
    let token = secret.expose().trim();
    webhook::post(&url, policy, &[&url, token], |req| req.body(body.clone())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::notify::Alert;

    fn failed() -> Alert {
        Alert::backup_failed(Some("p1"), "Shop <prod>", None, "could not connect")
    }

    #[test]
    fn each_service_gets_its_own_shape() {
        let a = failed();
        let slack = payload(ChatService::Slack, &a, None);
        let text = slack["text"].as_str().expect("text");
        assert!(
            text.contains("*Backup of Shop &lt;prod&gt; failed*"),
            "{text}"
        );
        assert!(text.starts_with(":red_circle:"), "{text}");
        assert_eq!(slack["blocks"][0]["type"], "section");

        let discord = payload(ChatService::Discord, &a, None);
        assert_eq!(
            discord["embeds"][0]["title"],
            "Backup of Shop <prod> failed"
        );
        assert_eq!(discord["embeds"][0]["color"], 0xD92D20);
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));

        let teams = payload(ChatService::Teams, &a, None);
        assert_eq!(teams["type"], "message");
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["color"], "Attention");
        assert_eq!(card["body"][2]["facts"][0]["value"], "backup.failed");

        let tg = payload(ChatService::Telegram, &a, Some("-100123"));
        assert_eq!(tg["chat_id"], "-100123");
        assert_eq!(tg["parse_mode"], "HTML");
        let t = tg["text"].as_str().expect("text");
        assert!(
            t.starts_with("<b>Backup of Shop &lt;prod&gt; failed</b>"),
            "{t}"
        );
    }

    #[test]
    fn long_bodies_are_cut_and_successes_are_green() {
        let mut a = Alert::backup_succeeded(Some("p1"), "Shop", "b1", json!({}));
        a.body = "x".repeat(10_000);
        let d = payload(ChatService::Discord, &a, None);
        let desc = d["embeds"][0]["description"].as_str().expect("desc");
        assert_eq!(desc.chars().count(), MAX_BODY_CHARS);
        assert!(desc.ends_with('…'));
        assert_eq!(d["embeds"][0]["color"], 0x2EA043);
    }

    #[test]
    fn telegram_posts_under_the_token_and_others_to_the_url() {
        let tg = ChatChannel {
            service: ChatService::Telegram,
            chat_id: Some("42".into()),
            api_base: Some("http://127.0.0.1:9".into()),
        };
        assert_eq!(
            endpoint(&tg, &Secret::new("123:abc")),
            "http://127.0.0.1:9/bot123:abc/sendMessage"
        );
        let slack = ChatChannel {
            service: ChatService::Slack,
            chat_id: None,
            api_base: None,
        };
        assert_eq!(
            endpoint(
                &slack,
                &Secret::new(" https://hooks.slack.com/services/T/B/x ")
            ),
            "https://hooks.slack.com/services/T/B/x"
        );
    }
}
