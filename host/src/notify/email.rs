//! The email channel: lettre's SMTP transport over rustls (ring).

use super::config::{EmailConfig, SmtpTls};
use anyhow::{anyhow, Context, Result};
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use std::time::Duration;

pub(super) struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    /// The admins' addresses.
    to: Vec<Mailbox>,
    /// The message ids' domain, from the sender's address.
    domain: String,
}

impl Mailer {
    pub(super) fn new(cfg: &EmailConfig, timeout: Duration) -> Result<Mailer> {
        let tls = || -> Result<TlsParameters> {
            let mut b = TlsParameters::builder(cfg.host.clone())
                .dangerous_accept_invalid_certs(!cfg.tls_verify);
            if let Some(ca) = &cfg.ca_file {
                // Only the CA the admin named is trusted, as for LDAP.
                let pem = std::fs::read(ca)
                    .with_context(|| format!("notify.email.ca_file {}", ca.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| anyhow!("notify.email.ca_file {}: {e}", ca.display()))?;
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| anyhow!("SMTP TLS set-up: {e}"))
        };
        let tls = match cfg.tls {
            SmtpTls::StartTls => Tls::Required(tls()?),
            SmtpTls::Implicit => Tls::Wrapper(tls()?),
            SmtpTls::None => Tls::None,
        };
        let mut b = SmtpTransport::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            b = b.credentials(Credentials::new(u.clone(), p.0.clone()));
        }
        let from: Mailbox = cfg.from.parse()?;
        Ok(Mailer {
            transport: b.build(),
            domain: from.email.domain().to_string(),
            from,
            to: cfg.to.iter().map(|a| a.parse()).collect::<Result<_, _>>()?,
        })
    }

    /// Sends to the admins.
    pub(super) fn to_admins(&self, id: &str, subject: &str, body: String) -> Result<()> {
        self.send(id, &self.to, subject, body)
    }

    /// Sends to one user.
    pub(super) fn to_user(&self, id: &str, to: &str, subject: &str, body: String) -> Result<()> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| anyhow!("not an email address: {e}"))?;
        self.send(id, &[to], subject, body)
    }

    fn send(&self, id: &str, to: &[Mailbox], subject: &str, body: String) -> Result<()> {
        let mut m = Message::builder()
            .from(self.from.clone())
            // The stable id lets a mail system drop a repeat.
            .message_id(Some(format!("<{id}@{}>", self.domain)))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for t in to {
            m = m.to(t.clone());
        }
        let m = m.body(body)?;
        self.transport
            .send(&m)
            .map_err(|e| anyhow!("SMTP: {}", describe(&e)))?;
        Ok(())
    }
}

/// lettre's error with its sources, which say what went wrong (refused, TLS, auth).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s += &format!(": {inner}");
        src = inner.source();
    }
    s
}
