//! The webhook channel: Standard Webhooks headers and HMAC-SHA256 signatures.

use super::config::WebhookConfig;
use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per key, space-separated.
pub(super) fn signature(keys: &[crate::model::Secret], id: &str, ts: i64, body: &str) -> String {
    keys.iter()
        .map(|k| {
            let key = STANDARD
                .decode(&k.0)
                .expect("keys were checked when the config loaded");
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key size");
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(body.as_bytes());
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// POSTs `body` to the hook; any 2xx answer is a delivery.
pub(super) async fn post(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    id: &str,
    body: &str,
) -> Result<()> {
    let ts = super::sender::unix_now();
    let resp = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature(&hook.keys, id, ts, body))
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| anyhow!("{}: {}", hook.name, describe(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("{}: the receiver answered HTTP {status}", hook.name);
    }
    Ok(())
}

/// What went wrong, from reqwest's error sources; never the URL (it may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s += &format!(": {inner}");
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // From the Standard Webhooks specification's test vectors.
        let key = Secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let sig = signature(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
