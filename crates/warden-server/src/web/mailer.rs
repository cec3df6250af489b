//! Sends sign-in links. The file outbox writes each message as an `.eml` file, for
//! development and tests; SMTP is for real deployments.

use std::path::PathBuf;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use warden_core::project::{MailerConfig, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot write to the outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{0}' is not a valid email address")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Message(String),
    #[error("the SMTP server refused or failed the delivery: {0}")]
    Smtp(String),
}

const SUBJECT: &str = "Your Warden sign-in link";

fn text_body(link: &str) -> String {
    format!(
        "Use this link within 15 minutes to sign in to Warden. It works once.\r\n\r\n{link}\r\n\r\n\
         If you did not ask for it, ignore this message.\r\n"
    )
}

#[derive(Debug, Clone)]
pub struct Mailer {
    config: MailerConfig,
}

impl Mailer {
    pub fn new(config: MailerConfig) -> Self {
        Self { config }
    }

    pub async fn send_sign_in_link(&self, to: &str, link: &str) -> Result<(), MailError> {
        match &self.config {
            MailerConfig::Outbox(dir) => {
                let fail = |source| MailError::Outbox {
                    path: dir.clone(),
                    source,
                };
                tokio::fs::create_dir_all(dir).await.map_err(fail)?;
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
                let safe_to: String = to
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '@' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{stamp}-{safe_to}.eml"));
                let body = format!(
                    "To: {to}\r\nSubject: {SUBJECT}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
                    text_body(link)
                );
                tokio::fs::write(&path, body).await.map_err(fail)?;
                tracing::info!(path = %path.display(), "sign-in link written to the outbox");
                Ok(())
            }
            MailerConfig::Smtp {
                host,
                port,
                username,
                password,
                from,
                tls,
            } => {
                let from_box: Mailbox =
                    from.parse().map_err(|_| MailError::Address(from.clone()))?;
                let to_box: Mailbox = to.parse().map_err(|_| MailError::Address(to.to_string()))?;
                let message = Message::builder()
                    .from(from_box)
                    .to(to_box)
                    .subject(SUBJECT)
                    .header(ContentType::TEXT_PLAIN)
                    .body(text_body(link))
                    .map_err(|e| MailError::Message(e.to_string()))?;
                let builder = match tls {
                    SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
                    SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
                    // Plain SMTP; the project loader allows it only for a loopback relay.
                    SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                        host,
                    )),
                }
                .map_err(|e| MailError::Smtp(e.to_string()))?
                .port(*port)
                .timeout(Some(std::time::Duration::from_secs(15)));
                let builder = match (username, password) {
                    (Some(u), Some(p)) => {
                        builder.credentials(Credentials::new(u.clone(), p.clone()))
                    }
                    _ => builder,
                };
                builder
                    .build()
                    .send(message)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                tracing::info!(host = %host, "sign-in link sent by SMTP");
                Ok(())
            }
        }
    }
}
