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
        AuditConfig {
            enabled: a.enabled.is_none_or(|e| e.value),
            retention_days,
            signing_key: self.relative(
                a.signing_key
                    .as_ref()
                    .map_or(".warden/audit.key", |k| k.value.as_str()),
            ),
        }
    }
}
