//! `server.limits.unauthenticated` (a bucket per endpoint family, per client address) and
//! `server.limits.unused_clients` (the cap on registered clients never used, their expiry).

use std::time::Duration;

use serde_saphyr::Spanned;

use super::Checker;
use crate::project::{AbuseLimits, Bucket, UnusedClients, model};

const MAX_BUCKET: u64 = 1_000_000;

impl Checker<'_> {
    /// A value within `lo..=hi`, or an error naming `field`.
    fn within(&mut self, v: &Option<Spanned<u64>>, field: &str, lo: u64, hi: u64) -> Option<u64> {
        match v {
            None => None,
            Some(n) if (lo..=hi).contains(&n.value) => Some(n.value),
            Some(n) => {
                self.err(n, field, format!("must be between {lo} and {hi}"));
                None
            }
        }
    }

    fn bucket(
        &mut self,
        b: &Option<Spanned<model::BucketSection>>,
        name: &str,
        default: Bucket,
        ok: &mut bool,
    ) -> Bucket {
        self.bucket_at(
            b,
            &format!("server.limits.unauthenticated.{name}"),
            default,
            ok,
        )
    }

    /// A bucket written at `path` (for errors), with `default` for what is left out.
    pub(super) fn bucket_at(
        &mut self,
        b: &Option<Spanned<model::BucketSection>>,
        path: &str,
        default: Bucket,
        ok: &mut bool,
    ) -> Bucket {
        let Some(b) = b else { return default };
        let field = |f: &str| format!("{path}.{f}");
        let mut get = |c: &mut Self, v: &Option<Spanned<u64>>, f: &str, d: u32| {
            if v.is_none() {
                return d;
            }
            match c.within(v, &field(f), 1, MAX_BUCKET) {
                Some(n) => u32::try_from(n).unwrap_or(d),
                None => {
                    *ok = false;
                    d
                }
            }
        };
        Bucket {
            burst: get(self, &b.value.burst, "burst", default.burst),
            per_minute: get(self, &b.value.per_minute, "per_minute", default.per_minute),
        }
    }

    pub(super) fn abuse_limits(&mut self, l: &model::LimitsSection) -> Option<AbuseLimits> {
        let d = AbuseLimits::default();
        let mut ok = true;
        let mut limits = d;
        if let Some(u) = &l.unauthenticated {
            let u = &u.value;
            limits.register = self.bucket(&u.register, "register", d.register, &mut ok);
            limits.authorize = self.bucket(&u.authorize, "authorize", d.authorize, &mut ok);
            limits.token = self.bucket(&u.token, "token", d.token, &mut ok);
            limits.revoke = self.bucket(&u.revoke, "revoke", d.revoke, &mut ok);
            limits.sign_in = self.bucket(&u.sign_in, "sign_in", d.sign_in, &mut ok);
        }
        if let Some(c) = &l.unused_clients {
            limits.unused_clients = self.unused_clients(&c.value, &mut ok);
        }
        ok.then_some(limits)
    }

    fn unused_clients(&mut self, c: &model::UnusedClientsSection, ok: &mut bool) -> UnusedClients {
        let d = AbuseLimits::default().unused_clients;
        let field = |f: &str| format!("server.limits.unused_clients.{f}");
        let mut get = |c: &mut Self, v: &Option<Spanned<u64>>, f: &str, hi: u64, d: u64| {
            if v.is_none() {
                return d;
            }
            c.within(v, &field(f), 1, hi).unwrap_or_else(|| {
                *ok = false;
                d
            })
        };
        let per_address = get(
            self,
            &c.per_address,
            "per_address",
            MAX_BUCKET,
            u64::from(d.per_address),
        );
        let total = get(self, &c.total, "total", 10_000_000, u64::from(d.total));
        let expire = get(
            self,
            &c.expire_after_seconds,
            "expire_after_seconds",
            365 * 24 * 60 * 60,
            d.expire_after.as_secs(),
        );
        let every = get(
            self,
            &c.purge_every_seconds,
            "purge_every_seconds",
            24 * 60 * 60,
            d.purge_every.as_secs(),
        );
        if let Some(p) = &c.per_address
            && per_address > total
        {
            self.err(
                p,
                field("per_address"),
                format!("{per_address} is more than total ({total})"),
            );
            *ok = false;
        }
        UnusedClients {
            per_address: u32::try_from(per_address).unwrap_or(d.per_address),
            total: u32::try_from(total).unwrap_or(d.total),
            expire_after: Duration::from_secs(expire),
            purge_every: Duration::from_secs(every),
        }
    }
}
