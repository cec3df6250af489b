//! Sends sign-in links. The file outbox writes each message as an `.eml` file, for
//! development and tests; SMTP is for real deployments.

use std::path::PathBuf;

use warden_core::project::MailerConfig;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot write to the outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SMTP delivery is not available in this build; set `login.outbox` in the project file")]
    SmtpUnavailable,
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
        let body = format!(
            "To: {to}\r\nSubject: Your Warden sign-in link\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Use this link within 15 minutes to sign in to Warden. It works once.\r\n\r\n{link}\r\n\r\n\
             If you did not ask for it, ignore this message.\r\n"
        );
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
                tokio::fs::write(&path, body).await.map_err(fail)?;
                tracing::info!(path = %path.display(), "sign-in link written to the outbox");
                Ok(())
            }
            MailerConfig::Smtp { .. } => Err(MailError::SmtpUnavailable),
        }
    }
}
