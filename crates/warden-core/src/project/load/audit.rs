//! The `audit` section: whether calls are recorded, for how long, and where the signing key
//! is kept.

use serde_saphyr::Spanned;

use super::Checker;
use crate::project::{AuditConfig, model};

impl Checker<'_> {
    pub(super) fn audit(&mut self, a: Option<Spanned<model::AuditSection>>) -> AuditConfig {
        let a = a.map(|a| a.value).unwrap_or_default();
        let retention_days = match &a.retention_days {
            Some(d) if d.value == 0 => {
                self.err(
                    d,
                    "audit.retention_days",
                    "must be at least 1 (records are kept this many days)",
                );
                365
            }
            Some(d) => d.value,
            None => 365,
        };
        let purge_every = match &a.purge_every_seconds {
            Some(s) if s.value == 0 => {
                self.err(
                    s,
                    "audit.purge_every_seconds",
                    "must be at least 1 (the purge runs this often; the default is 86400, daily)",
                );
                86_400
            }
            Some(s) => s.value,
            None => 86_400,
        };
        AuditConfig {
            enabled: a.enabled.is_none_or(|e| e.value),
            retention_days,
            purge_every: std::time::Duration::from_secs(purge_every),
            signing_key: self.relative(
                a.signing_key
                    .as_ref()
                    .map_or(".warden/audit.key", |k| k.value.as_str()),
            ),
        }
    }
}
