//! Welcome emails to created users, with a generated PIN when the source asks for one.
//!
//! A generated PIN is stored as every PIN is (fingerprint and argon2 hash). Its plaintext
//! exists only in the welcome email: in the outbox it is sealed (ChaCha20-Poly1305) with a key
//! kept in a file next to the database, never in it, and the sealed copy is erased once the
//! message is delivered or given up.

use super::{new_id, SourceNotify, WELCOME};
use crate::store::{NewMessage, RunEnd};
use anyhow::{anyhow, Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde_json::{json, Value};
use std::path::Path;

const DEFAULT_TEMPLATE: &str = "Subject: Your account {username}

Hello {full_name},

your account {username} is ready.
";

const DEFAULT_PIN_LINE: &str = "Your PIN: {pin}\n";

/// Users without an email a notice names; the rest are counted.
const NAMED: usize = 5;

/// The welcome messages of the users `end`'s run created, and notices about those without an
/// email address.
pub(super) fn messages(
    src: &SourceNotify,
    key_file: &Path,
    end: &RunEnd<'_>,
) -> Result<(Vec<NewMessage>, Vec<String>)> {
    let mut msgs = Vec::new();
    let mut no_email = Vec::new();
    let users = end.created_users()?;
    if users.is_empty() {
        return Ok((msgs, Vec::new()));
    }
    let template = match &src.welcome_template {
        Some(t) => t.clone(),
        None if src.generate_pin.is_some() => format!("{DEFAULT_TEMPLATE}{DEFAULT_PIN_LINE}"),
        None => DEFAULT_TEMPLATE.to_string(),
    };
    let mut key = None;
    for u in users {
        let Some(to) = u.email.clone().filter(|e| !e.trim().is_empty()) else {
            no_email.push(u.username);
            continue;
        };
        let sealed = match src.generate_pin {
            Some(digits) if !u.has_pin => {
                let pin = random_pin(digits)?;
                end.add_pin(u.id, &pin)?;
                if key.is_none() {
                    key = Some(seal_key(key_file)?);
                }
                Some(seal(key.as_ref().expect("loaded above"), &pin)?)
            }
            _ => None,
        };
        let payload = json!({
            "type": "user.welcome",
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "data": {
                "source": end.source,
                "to": to,
                "template": template,
                "vars": {
                    "username": u.username,
                    "full_name": u.full_name.clone().unwrap_or_else(|| u.username.clone()),
                    "email": to,
                    "source": end.source,
                },
            },
        });
        msgs.push(NewMessage {
            id: new_id(),
            event: "user.welcome".into(),
            channel: WELCOME.into(),
            source: Some(end.source.to_string()),
            run_id: Some(end.run_id),
            payload: payload.to_string(),
            sealed,
        });
    }
    let mut notices = Vec::new();
    if !no_email.is_empty() {
        let named: Vec<_> = no_email.iter().take(NAMED).map(|u| u.as_str()).collect();
        let more = no_email.len().saturating_sub(NAMED);
        notices.push(format!(
            "{} created user{} no email address, so no welcome email: {}{}",
            no_email.len(),
            if no_email.len() == 1 {
                " has"
            } else {
                "s have"
            },
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    Ok((msgs, notices))
}

/// A PIN of `digits` digits from the OS's CSPRNG, uniform (rejection sampling).
fn random_pin(digits: usize) -> Result<String> {
    let mut pin = String::with_capacity(digits);
    while pin.len() < digits {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| anyhow!("random: {e}"))?;
        for x in b {
            // 250 is the largest multiple of 10 a byte holds: no bias.
            if x < 250 && pin.len() < digits {
                pin.push(char::from(b'0' + x % 10));
            }
        }
    }
    Ok(pin)
}

/// The seal key, made on first use (owner-only on Unix).
fn seal_key(path: &Path) -> Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path) {
        return bytes
            .try_into()
            .map_err(|_| anyhow!("{}: not a 32-byte key", path.display()));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("random: {e}"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, &key)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        // Another process made it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => seal_key(path),
        Err(e) => Err(anyhow!("creating {}: {e}", path.display())),
    }
}

fn seal(key: &[u8; 32], pin: &str) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("random: {e}"))?;
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(&Nonce::from(nonce), pin.as_bytes())
            .map_err(|_| anyhow!("sealing a PIN failed"))?,
    );
    Ok(out)
}

fn unseal(key: &[u8; 32], sealed: &[u8]) -> Result<String> {
    if sealed.len() < 12 {
        return Err(anyhow!("a sealed PIN is damaged"));
    }
    let (nonce, ct) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().expect("12 bytes");
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let pin = cipher
        .decrypt(&Nonce::from(nonce), ct)
        .map_err(|_| anyhow!("a sealed PIN does not open with the key next to the database"))?;
    String::from_utf8(pin).map_err(|_| anyhow!("a sealed PIN is damaged"))
}

/// The subject and body of a welcome message, the PIN unsealed into it.
pub(super) fn render(
    payload: &Value,
    sealed: Option<&[u8]>,
    key_file: &Path,
) -> Result<(String, String, String)> {
    let d = &payload["data"];
    let to = d["to"].as_str().unwrap_or_default().to_string();
    let template = d["template"].as_str().unwrap_or(DEFAULT_TEMPLATE);
    let pin = match sealed {
        Some(s) => unseal(&seal_key(key_file)?, s)?,
        None => String::new(),
    };
    let text = fill(template, &d["vars"], &pin);
    let (subject, body) = match text.strip_prefix("Subject:") {
        Some(rest) => {
            let (s, b) = rest.split_once('\n').unwrap_or((rest, ""));
            (
                s.trim().to_string(),
                b.trim_start_matches(['\r', '\n']).to_string(),
            )
        }
        None => ("Your account".to_string(), text),
    };
    Ok((to, subject, body))
}

/// Replaces `{name}` placeholders in one pass: a value is never scanned again, so a name
/// holding "{pin}" stays as it is.
fn fill(template: &str, vars: &Value, pin: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j)
                if after[..j]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                let name = &after[..j];
                match (name, vars[name].as_str()) {
                    ("pin", _) => out.push_str(pin),
                    (_, Some(v)) => out.push_str(v),
                    _ => out.push_str(&rest[i..i + j + 2]),
                }
                rest = &after[j + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_have_the_length_and_only_digits() {
        for n in 4..=8 {
            let p = random_pin(n).unwrap();
            assert_eq!(p.len(), n);
            assert!(p.bytes().all(|b| b.is_ascii_digit()), "{p}");
        }
    }

    #[test]
    fn placeholders_are_filled_once() {
        let vars = json!({"username": "{pin}", "full_name": "Ann"});
        let t = "Hi {full_name} ({username}), PIN {pin}, {unknown} {not a name}";
        assert_eq!(
            fill(t, &vars, "1234"),
            "Hi Ann ({pin}), PIN 1234, {unknown} {not a name}"
        );
    }

    #[test]
    fn a_sealed_pin_opens_only_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = seal_key(&path).unwrap();
        assert_eq!(seal_key(&path).unwrap(), key);
        let s = seal(&key, "4821").unwrap();
        assert!(!s.windows(4).any(|w| w == b"4821"));
        assert_eq!(unseal(&key, &s).unwrap(), "4821");
        assert!(unseal(&[7; 32], &s).is_err());
    }
}
