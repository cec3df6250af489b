//! The top-level `limits` section: token buckets on tool calls (per user, per role, per
//! client, per organisation, per user and tool, writes per user) and daily call quotas.
//! Nothing is limited unless written here.

use serde_saphyr::Spanned;

use super::Checker;
use super::suggest::{did_you_mean, listed};
use crate::identity::Role;
use crate::project::{Bucket, CallLimits, Tool, model};

/// The largest burst or rate accepted.
const MAX: u64 = 1_000_000_000;

impl Checker<'_> {
    pub(super) fn call_limits(
        &mut self,
        l: Option<Spanned<model::CallLimitsSection>>,
        tools: &[Tool],
    ) -> CallLimits {
        let Some(l) = l.map(|l| l.value) else {
            return CallLimits::default();
        };
        let mut out = CallLimits {
            per_user: self.call_bucket(&l.per_user, "limits.per_user"),
            writes_per_user: self.call_bucket(&l.writes_per_user, "limits.writes_per_user"),
            per_client: self.call_bucket(&l.per_client, "limits.per_client"),
            per_org: self.call_bucket(&l.per_org, "limits.per_org"),
            ..CallLimits::default()
        };
        for (name, b) in &l.roles {
            let field = format!("limits.roles.{name}");
            let Some(bucket) = self.call_bucket(&Some(b.clone()), &field) else {
                continue;
            };
            match name.parse::<Role>() {
                Ok(role) => out.roles.push((role, bucket)),
                Err(_) => {
                    let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                    self.err(
                        b,
                        field,
                        format!(
                            "`{name}` is not a role; {}roles are {}",
                            did_you_mean(name, names.iter().copied()),
                            listed(&names)
                        ),
                    );
                }
            }
        }
        for (name, b) in &l.tools {
            let field = format!("limits.tools.{name}");
            let Some(bucket) = self.call_bucket(&Some(b.clone()), &field) else {
                continue;
            };
            if tools.iter().any(|t| &t.name == name) {
                out.tools.push((name.clone(), bucket));
            } else {
                self.err(
                    b,
                    field,
                    format!(
                        "no tool is named `{name}`; {}this project's tools are {}",
                        did_you_mean(name, tools.iter().map(|t| t.name.as_str())),
                        listed(&tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())
                    ),
                );
            }
        }
        if let Some(d) = l.daily.map(|d| d.value) {
            out.calls_per_user_per_day =
                self.quota(&d.calls_per_user, "limits.daily.calls_per_user");
            out.calls_per_org_per_day = self.quota(&d.calls_per_org, "limits.daily.calls_per_org");
            out.rows_returned_per_user_per_day = self.quota(
                &d.rows_returned_per_user,
                "limits.daily.rows_returned_per_user",
            );
            out.rows_returned_per_org_per_day = self.quota(
                &d.rows_returned_per_org,
                "limits.daily.rows_returned_per_org",
            );
            out.rows_written_per_user_per_day = self.quota(
                &d.rows_written_per_user,
                "limits.daily.rows_written_per_user",
            );
            out.rows_written_per_org_per_day =
                self.quota(&d.rows_written_per_org, "limits.daily.rows_written_per_org");
        }
        out
    }

    fn quota(&mut self, v: &Option<Spanned<u64>>, field: &str) -> Option<u64> {
        let n = v.as_ref()?;
        if (1..=MAX).contains(&n.value) {
            Some(n.value)
        } else {
            self.err(n, field, format!("must be between 1 and {MAX} a day"));
            None
        }
    }

    /// A bucket: `per_minute` is required, `burst` defaults to it.
    fn call_bucket(
        &mut self,
        b: &Option<Spanned<model::BucketSection>>,
        path: &str,
    ) -> Option<Bucket> {
        let b = b.as_ref()?;
        let Some(per_minute) = &b.value.per_minute else {
            self.err(
                b,
                format!("{path}.per_minute"),
                "is required: how many calls a minute the bucket refills (`burst`, how many at once, defaults to it)",
            );
            return None;
        };
        let mut ok = true;
        let default = Bucket {
            burst: u32::try_from(per_minute.value.min(MAX)).unwrap_or(u32::MAX),
            per_minute: 0,
        };
        let bucket = self.bucket_at(&Some(b.clone()), path, default, &mut ok);
        ok.then_some(bucket)
    }
}
