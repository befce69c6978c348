//! Service-account credentials of the `http` capability: a JWT assertion signed with the
//! account's private key (RS256) and exchanged for an access token (RFC 7523), the way
//! Google's service accounts authenticate. The key file is read here, in the host; the key
//! and the tokens never reach a plugin.

use crate::model::Secret;
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lifetime asked of an assertion; Google accepts at most an hour.
const ASSERTION_LIFETIME: u64 = 3600;
/// The grant type of RFC 7523, section 2.1.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A service account's key: who it is, where its tokens come from, and its signing key.
pub struct ServiceAccount {
    pub client_email: String,
    pub client_id: Option<String>,
    pub token_uri: String,
    key_id: Option<String>,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("key", &"<secret>")
            .finish()
    }
}

impl ServiceAccount {
    /// Reads the key from `value`: the key's JSON itself, or the path of its file (relative
    /// to `dir`). Errors name the file and the field, never the key.
    pub fn load(value: &Secret, dir: &Path) -> Result<ServiceAccount> {
        let text = value.0.trim();
        let (json, what) = if text.starts_with('{') {
            (text.to_string(), "the service account key".to_string())
        } else {
            let path = dir.join(text);
            let json = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the service account key {}", path.display()))?;
            (json, format!("the service account key {}", path.display()))
        };
        let v: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| anyhow!("{what} is not JSON: {e}"))?;
        let field = |name: &str| -> Result<String> {
            match v.get(name).and_then(|f| f.as_str()) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => bail!("{what} has no {name} (a Google service account's JSON key has)"),
            }
        };
        if let Some(t) = v.get("type").and_then(|t| t.as_str()) {
            if t != "service_account" {
                bail!("{what} is of type {t:?}, not \"service_account\"");
            }
        }
        let pem = field("private_key")?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| anyhow!("{what}: private_key is not a PEM PKCS#8 private key"))?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| anyhow!("{what}: private_key is not a usable RSA key ({e})"))?;
        let token_uri = field("token_uri")?;
        url::Url::parse(&token_uri).map_err(|e| anyhow!("{what}: token_uri: {e}"))?;
        Ok(ServiceAccount {
            client_email: field("client_email")?,
            client_id: field("client_id").ok(),
            token_uri,
            key_id: field("private_key_id").ok(),
            key,
        })
    }

    /// A signed assertion for `scope`, acting for `subject` when given (domain-wide
    /// delegation): RFC 7523's JWT with `iss`, `sub`, `scope`, `aud` (the token URI), `iat`
    /// and `exp`.
    pub fn assertion(&self, subject: Option<&str>, scope: &str) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| anyhow!("the clock is before 1970: {e}"))?
            .as_secs();
        let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.as_str().into();
        }
        let mut claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        if let Some(sub) = subject.filter(|s| !s.is_empty()) {
            claims["sub"] = sub.into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow!("signing the assertion failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// What an admin must check when the token endpoint refuses this account.
    pub fn advice(&self, subject: Option<&str>, scope: &str) -> String {
        let client = self.client_id.as_deref().unwrap_or(&self.client_email);
        match subject.filter(|s| !s.is_empty()) {
            Some(sub) => format!(
                "check that the key is not revoked, that client {client} has domain-wide \
                 delegation for the scopes {scope} (Admin console: Security, API controls), \
                 and that {sub} exists"
            ),
            None => format!("check that the key of {} is not revoked", self.client_email),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    /// A throwaway 2048-bit key made by openssl, as Google's JSON key file holds it.
    fn key_json(token_uri: &str) -> (String, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("k.pem");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            pem.to_str().unwrap(),
        ]);
        let public = run(&[
            "rsa",
            "-in",
            pem.to_str().unwrap(),
            "-RSAPublicKey_out",
            "-outform",
            "DER",
        ]);
        let json = serde_json::json!({
            "type": "service_account",
            "client_email": "roster@proj.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "private_key_id": "kid-1",
            "private_key": std::fs::read_to_string(&pem).unwrap(),
            "token_uri": token_uri,
        });
        (json.to_string(), public)
    }

    #[test]
    fn an_assertion_is_signed_with_the_key_and_carries_rfc_7523_claims() {
        let (json, public) = key_json("https://oauth2.example.com/token");
        let sa = ServiceAccount::load(&Secret(json), Path::new("/")).unwrap();
        assert!(!format!("{sa:?}").contains("PRIVATE"));
        let jwt = sa
            .assertion(Some("admin@example.com"), "a.readonly b.readonly")
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "kid-1");
        assert_eq!(claims["iss"], "roster@proj.iam.gserviceaccount.com");
        assert_eq!(claims["sub"], "admin@example.com");
        assert_eq!(claims["scope"], "a.readonly b.readonly");
        assert_eq!(claims["aud"], "https://oauth2.example.com/token");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 3600);
        let signed = format!("{}.{}", parts[0], parts[1]);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(signed.as_bytes(), &sig)
            .expect("the signature verifies with the public key");
        // Without a subject, no sub claim.
        let jwt = sa.assertion(None, "s").unwrap();
        let claims = decode(jwt.split('.').nth(1).unwrap());
        assert!(claims.get("sub").is_none());
    }

    #[test]
    fn a_broken_key_file_is_named_without_showing_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = |json: &str| {
            std::fs::write(dir.path().join("k.json"), json).unwrap();
            let e = ServiceAccount::load(&Secret("k.json".into()), dir.path()).unwrap_err();
            format!("{e:#}")
        };
        assert!(err("not json").contains("k.json is not JSON"));
        assert!(err(r#"{"type": "authorized_user"}"#).contains("not \"service_account\""));
        assert!(err(r#"{"client_email": "x"}"#).contains("has no private_key"));
        let bad = r#"{"client_email": "x", "token_uri": "https://t", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#;
        let e = err(bad);
        assert!(e.contains("private_key is not"), "{e}");
        assert!(!e.contains("AAAA"), "{e}");
        let e = format!(
            "{:#}",
            ServiceAccount::load(&Secret("missing.json".into()), dir.path()).unwrap_err()
        );
        assert!(e.contains("missing.json"), "{e}");
    }
}
