//! Message payloads (the Standard Webhooks body `{"type", "timestamp", "data"}`) and the
//! plain-text email made from the same payload.

use super::Event;
use crate::store::RunEnd;
use chrono::NaiveDate;
use serde_json::{json, Value};

/// Failed entries a message lists; the run log has them all.
const MAX_FAILED: usize = 10;

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn run_payload(event: Event, end: &RunEnd<'_>, public_url: Option<&str>) -> Value {
    let c = end.counts;
    let failed: Vec<Value> = (end.errors.iter().take(MAX_FAILED))
        .map(|e| json!({"entry": e.entry, "reason": e.reason}))
        .collect();
    let mut data = json!({
        "source": end.source,
        "run_id": end.run_id,
        "status": end.status.as_str(),
        "counts": {
            "created": c.created, "updated": c.updated, "unchanged": c.unchanged,
            "deactivated": c.deactivated, "reactivated": c.reactivated,
            "deleted": c.deleted, "failed": c.failed,
        },
        "failed_entries": failed,
        "message": end.message,
    });
    if let Some(base) = public_url {
        data["link"] = format!("{}/runs/{}", base.trim_end_matches('/'), end.run_id).into();
    }
    if event == Event::RunHeld {
        data["approve"] = format!(
            "review with `roster sync {} --dry-run`, then apply with `roster sync {} --force`",
            end.source, end.source
        )
        .into();
    }
    json!({"type": event.as_str(), "timestamp": timestamp(), "data": data})
}

pub(super) fn expiry_payload(source: &str, secret: &str, expires: NaiveDate, days: i64) -> Value {
    json!({
        "type": Event::SecretExpiring.as_str(),
        "timestamp": timestamp(),
        "data": {"source": source, "secret": secret, "expires": expires.to_string(), "days_left": days},
    })
}

pub(super) fn test_payload() -> Value {
    json!({"type": "test", "timestamp": timestamp(), "data": {"message": "a test message from roster notify test"}})
}

/// The subject and body of an admin email for a payload.
pub(super) fn email_text(payload: &Value) -> (String, String) {
    let d = &payload["data"];
    let kind = payload["type"].as_str().unwrap_or("");
    let source = d["source"].as_str().unwrap_or("?");
    let run = d["run_id"].as_i64().unwrap_or(0);
    let counts = || {
        let c = &d["counts"];
        let parts: Vec<String> = [
            "created",
            "updated",
            "deactivated",
            "reactivated",
            "deleted",
            "failed",
        ]
        .iter()
        .filter_map(|k| {
            let n = c[k].as_u64().unwrap_or(0);
            (n > 0).then(|| format!("{n} {k}"))
        })
        .collect();
        if parts.is_empty() {
            "no changes".to_string()
        } else {
            parts.join(", ")
        }
    };
    let subject = match kind {
        "run.changed" => format!("[roster] {source}: {}", counts()),
        "run.failed" => format!("[roster] {source}: run {run} failed"),
        "run.held" => format!("[roster] {source}: run {run} held by the deletion guard"),
        "run.recovered" => format!("[roster] {source}: run {run} ok again"),
        "secret.expiring" => {
            let days = d["days_left"].as_i64().unwrap_or(0);
            if days == 0 {
                format!(
                    "[roster] {source}: the {} expires today",
                    d["secret"].as_str().unwrap_or("secret")
                )
            } else {
                format!(
                    "[roster] {source}: the {} expires in {days} day{}",
                    d["secret"].as_str().unwrap_or("secret"),
                    if days == 1 { "" } else { "s" }
                )
            }
        }
        _ => "[roster] test message".to_string(),
    };
    let mut body = String::new();
    match kind {
        "secret.expiring" => {
            body += &format!(
                "The {} of source {source} expires on {}. Create a new one and update the \
                 configuration before then.\n",
                d["secret"].as_str().unwrap_or("secret"),
                d["expires"].as_str().unwrap_or("?")
            );
        }
        "test" => body += "roster can reach this channel.\n",
        _ => {
            body += &format!(
                "Source {source}, run {run}: {} ({}).\n",
                d["status"].as_str().unwrap_or("?"),
                counts()
            );
            if let Some(m) = d["message"].as_str() {
                body += &format!("\n{m}\n");
            }
            if let Some(a) = d["approve"].as_str() {
                body += &format!("\nTo approve: {a}.\n");
            }
            if let Some(f) = d["failed_entries"].as_array().filter(|f| !f.is_empty()) {
                body += "\nFailed entries:\n";
                for e in f {
                    body += &format!(
                        "  {}: {}\n",
                        e["entry"].as_str().unwrap_or("?"),
                        e["reason"].as_str().unwrap_or("?")
                    );
                }
            }
            if let Some(l) = d["link"].as_str() {
                body += &format!("\n{l}\n");
            }
        }
    }
    (subject, body)
}
