//! The chain: how a record is hashed, and how a chain is checked. Pure functions, shared by
//! `warden audit verify` (on the database) and by anyone verifying an export offline.
//!
//! A record's hash is the SHA-256 of its canonical form: a JSON object of every field except
//! `id` and `hash`, in the order of [`Record`]'s fields, with `"v": 1` first; `trace_id`
//! (added later) is part of it only when the record has one, so records made before it
//! existed keep their hashes. The first record of a chain has `prev_hash` [`GENESIS`]; each
//! later one has its predecessor's hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::signer::{Verifier, checkpoint_message};

/// `prev_hash` of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored record. `params`, `affected` and `detail` are JSON text, hashed as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Record {
    pub id: i64,
    pub chain: String,
    pub seq: i64,
    pub ts: String,
    pub request_id: String,
    pub event: String,
    pub org: Option<String>,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub auth_method: Option<String>,
    pub credential: Option<String>,
    pub source: String,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    pub action: String,
    pub params: Option<String>,
    pub decision: String,
    pub stage: Option<String>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub outcome: String,
    pub duration_us: Option<i64>,
    pub affected: Option<String>,
    pub detail: Option<String>,
    /// The W3C trace id the request carried, when it carried a valid `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// A signed statement that a chain's record `seq` had hash `hash`. `kind` is `periodic`,
/// `shutdown`, `manual` or `base` (written by a retention purge: the chain now starts after
/// it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Checkpoint {
    pub id: i64,
    pub chain: String,
    pub seq: i64,
    pub hash: String,
    pub ts: String,
    pub kind: String,
    pub key_id: String,
    pub signature: String,
}

impl Checkpoint {
    pub fn message(&self) -> Vec<u8> {
        checkpoint_message(&self.chain, self.seq, &self.hash, &self.ts, &self.kind)
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    chain: &'a str,
    seq: i64,
    ts: &'a str,
    request_id: &'a str,
    event: &'a str,
    org: Option<&'a str>,
    user_id: Option<&'a str>,
    user_email: Option<&'a str>,
    auth_method: Option<&'a str>,
    credential: Option<&'a str>,
    source: &'a str,
    remote_addr: Option<&'a str>,
    user_agent: Option<&'a str>,
    action: &'a str,
    params: Option<&'a str>,
    decision: &'a str,
    stage: Option<&'a str>,
    rule: Option<&'a str>,
    reason: Option<&'a str>,
    outcome: &'a str,
    duration_us: Option<i64>,
    affected: Option<&'a str>,
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    prev_hash: &'a str,
}

/// The hash `r` should carry, computed as if its sequence number were `seq`.
pub fn hash_at(r: &Record, seq: i64) -> String {
    let c = Canonical {
        v: 1,
        chain: &r.chain,
        seq,
        ts: &r.ts,
        request_id: &r.request_id,
        event: &r.event,
        org: r.org.as_deref(),
        user_id: r.user_id.as_deref(),
        user_email: r.user_email.as_deref(),
        auth_method: r.auth_method.as_deref(),
        credential: r.credential.as_deref(),
        source: &r.source,
        remote_addr: r.remote_addr.as_deref(),
        user_agent: r.user_agent.as_deref(),
        action: &r.action,
        params: r.params.as_deref(),
        decision: &r.decision,
        stage: r.stage.as_deref(),
        rule: r.rule.as_deref(),
        reason: r.reason.as_deref(),
        outcome: &r.outcome,
        duration_us: r.duration_us,
        affected: r.affected.as_deref(),
        detail: r.detail.as_deref(),
        trace_id: r.trace_id.as_deref(),
        prev_hash: &r.prev_hash,
    };
    // Serializing borrowed strings and integers cannot fail.
    let bytes = serde_json::to_vec(&c).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// The hash `r` should carry.
pub fn hash(r: &Record) -> String {
    hash_at(r, r.seq)
}

/// How far from its place a moved record is recognised as moved (rather than edited).
const MOVE_WINDOW: i64 = 64;

/// What is wrong at the first broken link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A record's content no longer matches its hash.
    Modified,
    /// Records are missing from the middle of the chain.
    Deleted,
    /// A record that the chain never held.
    Inserted,
    /// Records are out of their chained order.
    Reordered,
    /// Records a signed checkpoint vouches for are gone from the end.
    Truncated,
    /// The chain is self-consistent but disagrees with a signed checkpoint: it was rewritten
    /// and re-hashed.
    Rewritten,
    /// A checkpoint's signature is not valid for the key.
    BadCheckpoint,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modified => "modified",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::Truncated => "truncated",
            Self::Rewritten => "rewritten",
            Self::BadCheckpoint => "bad checkpoint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    pub kind: BreakKind,
    /// The sequence number where the chain breaks.
    pub seq: i64,
    /// The row id of the record at fault, when there is one.
    pub id: Option<i64>,
    pub detail: String,
}

/// The result of checking one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub chain: String,
    pub records: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The hash of the last record: the chain head.
    pub head: Option<String>,
    pub checkpoints: u64,
    /// The newest checkpoint whose signature and hash both check out.
    pub last_checkpoint_seq: Option<i64>,
    pub problem: Option<Break>,
}

/// Checks one chain: `records` sorted by (seq, id), `checkpoints` by (seq, id). Without a
/// verifier, signatures are not checked (and the report cannot vouch for truncation).
pub fn verify_chain(
    chain: &str,
    records: &[Record],
    checkpoints: &[Checkpoint],
    verifier: Option<&Verifier>,
) -> ChainReport {
    verify_chain_with_keys(
        chain,
        records,
        checkpoints,
        verifier.map(std::slice::from_ref),
    )
}

/// [`verify_chain`] where each checkpoint must be signed by one of `keys` (the registered
/// signers of several instances), the one its `key_id` names.
pub fn verify_chain_with_keys(
    chain: &str,
    records: &[Record],
    checkpoints: &[Checkpoint],
    keys: Option<&[Verifier]>,
) -> ChainReport {
    let mut report = ChainReport {
        chain: chain.to_string(),
        records: records.len() as u64,
        first_seq: records.first().map(|r| r.seq),
        last_seq: records.last().map(|r| r.seq),
        head: records.last().map(|r| r.hash.clone()),
        checkpoints: checkpoints.len() as u64,
        last_checkpoint_seq: None,
        problem: None,
    };
    // Signatures first: nothing below may trust an unsigned checkpoint.
    if let Some(keys) = keys {
        for cp in checkpoints {
            let signer = keys.iter().find(|v| v.key_id() == cp.key_id);
            if !signer.is_some_and(|v| v.verify(&cp.message(), &cp.signature)) {
                let trusted: Vec<&str> = keys.iter().map(Verifier::key_id).collect();
                report.problem = Some(Break {
                    kind: BreakKind::BadCheckpoint,
                    seq: cp.seq,
                    id: None,
                    detail: match signer {
                        Some(_) => format!(
                            "checkpoint {} (seq {}) is not signed by key {}; it was forged or altered",
                            cp.id, cp.seq, cp.key_id
                        ),
                        None => format!(
                            "checkpoint {} (seq {}) names key {}, which is not a trusted signer ({}); it was forged, or that instance's key was never registered (`warden audit signer add`)",
                            cp.id,
                            cp.seq,
                            cp.key_id,
                            trusted.join(", ")
                        ),
                    },
                });
                return report;
            }
        }
    }
    // A retention purge leaves a signed base: the chain continues from it.
    let base = checkpoints.iter().rev().find(|c| c.kind == "base");
    let (mut expected_seq, mut expected_prev) = match base {
        Some(b) => (b.seq + 1, b.hash.clone()),
        None => (1, GENESIS.to_string()),
    };
    let by_hash: std::collections::HashMap<&str, &Record> =
        records.iter().map(|r| (r.hash.as_str(), r)).collect();
    for r in records {
        if r.seq < expected_seq {
            report.problem = Some(Break {
                kind: BreakKind::Inserted,
                seq: r.seq,
                id: Some(r.id),
                detail: format!(
                    "record id {} claims seq {}, which the chain already holds (or precedes its start); it was inserted",
                    r.id, r.seq
                ),
            });
            return report;
        }
        if r.seq > expected_seq {
            let detail = if r.seq == expected_seq + 1 {
                format!("record seq {expected_seq} is missing; it was deleted")
            } else {
                format!(
                    "records seq {expected_seq} to {} are missing; they were deleted",
                    r.seq - 1
                )
            };
            report.problem = Some(Break {
                kind: BreakKind::Deleted,
                seq: expected_seq,
                id: None,
                detail,
            });
            return report;
        }
        if hash(r) != r.hash {
            // Does it hash right at another position? Then it was moved, not edited.
            let belongs = (r.seq.saturating_sub(MOVE_WINDOW)..=r.seq.saturating_add(MOVE_WINDOW))
                .find(|s| *s != r.seq && hash_at(r, *s) == r.hash);
            report.problem = Some(match belongs {
                Some(at) => Break {
                    kind: BreakKind::Reordered,
                    seq: r.seq,
                    id: Some(r.id),
                    detail: format!(
                        "record id {} sits at seq {} but was written as seq {at}; records were swapped or moved",
                        r.id, r.seq
                    ),
                },
                None => Break {
                    kind: BreakKind::Modified,
                    seq: r.seq,
                    id: Some(r.id),
                    detail: format!(
                        "record seq {} (id {}) does not match its hash; a field was changed after it was written",
                        r.seq, r.id
                    ),
                },
            });
            return report;
        }
        if r.prev_hash != expected_prev {
            let detail = if by_hash.contains_key(r.prev_hash.as_str()) {
                format!(
                    "record seq {} follows a different record than the one before it; records were reordered",
                    r.seq
                )
            } else {
                format!(
                    "record seq {} does not follow the record before it; the record before it (or this one) was replaced or inserted",
                    r.seq
                )
            };
            report.problem = Some(Break {
                kind: if by_hash.contains_key(r.prev_hash.as_str()) {
                    BreakKind::Reordered
                } else {
                    BreakKind::Inserted
                },
                seq: r.seq,
                id: Some(r.id),
                detail,
            });
            return report;
        }
        expected_prev = r.hash.clone();
        expected_seq += 1;
    }
    // Every checkpoint must still agree with the chain.
    let at_seq: std::collections::HashMap<i64, &Record> =
        records.iter().map(|r| (r.seq, r)).collect();
    let last = expected_seq - 1;
    for cp in checkpoints {
        if cp.kind == "base" && base.is_some_and(|b| b.id == cp.id) {
            report.last_checkpoint_seq = report.last_checkpoint_seq.max(Some(cp.seq));
            continue;
        }
        if cp.seq > last {
            report.problem = Some(Break {
                kind: BreakKind::Truncated,
                seq: last + 1,
                id: None,
                detail: format!(
                    "a checkpoint signed at {} vouches for seq {}, but the chain ends at seq {last}; records after it were removed",
                    cp.ts, cp.seq
                ),
            });
            return report;
        }
        match at_seq.get(&cp.seq) {
            Some(r) if r.hash == cp.hash => {
                report.last_checkpoint_seq = report.last_checkpoint_seq.max(Some(cp.seq));
            }
            Some(_) => {
                report.problem = Some(Break {
                    kind: BreakKind::Rewritten,
                    seq: cp.seq,
                    id: None,
                    detail: format!(
                        "record seq {} differs from what the checkpoint signed at {} vouches for; the chain was rewritten and re-hashed",
                        cp.seq, cp.ts
                    ),
                });
                return report;
            }
            // Before the base: purged, as it should be.
            None => {}
        }
    }
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::audit::signer::Signer;

    fn chain_of(n: i64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for seq in 1..=n {
            let mut r = Record {
                id: seq + 100,
                chain: "acme".into(),
                seq,
                ts: format!("2026-11-21T10:00:{seq:02}.000Z"),
                request_id: format!("req-{seq}"),
                event: "tool_call".into(),
                org: Some("acme".into()),
                user_id: Some("u1".into()),
                user_email: Some("a@acme.example".into()),
                auth_method: Some("oauth".into()),
                credential: Some("client-1".into()),
                source: "mcp_http".into(),
                remote_addr: Some("127.0.0.1:5000".into()),
                user_agent: None,
                action: "search".into(),
                params: Some(format!("{{\"q\":\"{seq}\"}}")),
                decision: "allowed".into(),
                stage: None,
                rule: None,
                reason: None,
                outcome: "success".into(),
                duration_us: Some(10),
                affected: None,
                detail: None,
                trace_id: None,
                prev_hash: out.last().map_or(GENESIS.to_string(), |p| p.hash.clone()),
                hash: String::new(),
            };
            r.hash = hash(&r);
            out.push(r);
        }
        out
    }

    #[test]
    fn a_record_without_a_trace_id_hashes_as_before_trace_ids_existed() {
        let r = chain_of(1).remove(0);
        // The canonical form as it was written before `trace_id`: no such key at all.
        let before = serde_json::json!({
            "v": 1, "chain": r.chain, "seq": r.seq, "ts": r.ts, "request_id": r.request_id,
            "event": r.event, "org": r.org, "user_id": r.user_id, "user_email": r.user_email,
            "auth_method": r.auth_method, "credential": r.credential, "source": r.source,
            "remote_addr": r.remote_addr, "user_agent": r.user_agent, "action": r.action,
            "params": r.params, "decision": r.decision, "stage": r.stage, "rule": r.rule,
            "reason": r.reason, "outcome": r.outcome, "duration_us": r.duration_us,
            "affected": r.affected, "detail": r.detail, "prev_hash": r.prev_hash,
        });
        let bytes = serde_json::to_vec(&before).unwrap();
        assert_eq!(r.hash, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn a_trace_id_is_hashed_so_adding_changing_or_removing_it_breaks_the_chain() {
        let mut r = chain_of(1).remove(0);
        r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        r.hash = hash(&r);
        let traced = r.hash.clone();
        assert_ne!(traced, chain_of(1)[0].hash);
        let mut changed = r.clone();
        changed.trace_id = Some("00000000000000000000000000000001".into());
        assert_ne!(hash(&changed), traced);
        let mut removed = r.clone();
        removed.trace_id = None;
        assert_ne!(hash(&removed), traced);
        let mut c = chain_of(3);
        c[1].trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let b = verify_chain("acme", &c, &[], None).problem.unwrap();
        assert_eq!((b.kind, b.seq), (BreakKind::Modified, 2), "{b:?}");
    }

    fn signer() -> Signer {
        let dir = tempfile::tempdir().unwrap();
        Signer::load_or_create(&dir.path().join("k")).unwrap()
    }

    fn checkpoint(s: &Signer, r: &Record) -> Checkpoint {
        let ts = "2026-11-21T10:01:00.000Z".to_string();
        Checkpoint {
            id: r.seq,
            chain: r.chain.clone(),
            seq: r.seq,
            hash: r.hash.clone(),
            signature: s.sign(&checkpoint_message(
                &r.chain, r.seq, &r.hash, &ts, "periodic",
            )),
            ts,
            kind: "periodic".into(),
            key_id: s.verifier().key_id().into(),
        }
    }

    fn check(records: &[Record], cps: &[Checkpoint], s: &Signer) -> Option<Break> {
        let mut sorted = records.to_vec();
        sorted.sort_by_key(|r| (r.seq, r.id));
        verify_chain("acme", &sorted, cps, Some(s.verifier())).problem
    }

    #[test]
    fn an_intact_chain_verifies() {
        let s = signer();
        let c = chain_of(10);
        let cps = [checkpoint(&s, &c[9])];
        let r = verify_chain("acme", &c, &cps, Some(s.verifier()));
        assert_eq!(r.problem, None);
        assert_eq!(r.last_checkpoint_seq, Some(10));
    }

    #[test]
    fn each_kind_of_tampering_is_named_where_it_happened() {
        let s = signer();
        let base = chain_of(10);
        let cps = [checkpoint(&s, &base[9])];

        let mut c = base.clone();
        c[4].action = "delete_everything".into();
        let b = check(&c, &cps, &s).unwrap();
        assert_eq!((b.kind, b.seq, b.id), (BreakKind::Modified, 5, Some(105)));

        let mut c = base.clone();
        c.remove(4);
        let b = check(&c, &cps, &s).unwrap();
        assert_eq!((b.kind, b.seq), (BreakKind::Deleted, 5));

        let mut c = base.clone();
        let mut forged = c[4].clone();
        forged.id = 999;
        forged.user_email = Some("someone-else@acme.example".into());
        forged.hash = hash(&forged);
        c.push(forged);
        let b = check(&c, &cps, &s).unwrap();
        assert_eq!((b.kind, b.seq, b.id), (BreakKind::Inserted, 5, Some(999)));

        // Swapped positions: the sequence numbers of two records exchanged.
        let mut c = base.clone();
        c[4].seq = 6;
        c[5].seq = 5;
        let b = check(&c, &cps, &s).unwrap();
        assert_eq!((b.kind, b.seq), (BreakKind::Reordered, 5), "{b:?}");

        // Swapped contents: everything but the row id and seq exchanged.
        let mut c = base.clone();
        let (a, bb) = (c[4].clone(), c[5].clone());
        c[4] = Record {
            id: a.id,
            seq: a.seq,
            ..bb.clone()
        };
        c[5] = Record {
            id: bb.id,
            seq: bb.seq,
            ..a
        };
        let b = check(&c, &cps, &s).unwrap();
        assert_eq!((b.kind, b.seq), (BreakKind::Reordered, 5), "{b:?}");

        let mut c = base.clone();
        c.truncate(7);
        let b = check(&c, &cps, &s).unwrap();
        assert_eq!((b.kind, b.seq), (BreakKind::Truncated, 8), "{b:?}");

        // Edited and every later hash recomputed: only the signature can tell.
        let mut c = base.clone();
        c[4].action = "rewritten".into();
        for i in 4..c.len() {
            if i > 0 {
                c[i].prev_hash = c[i - 1].hash.clone();
            }
            c[i].hash = hash(&c[i]);
        }
        let b = check(&c, &cps, &s).unwrap();
        assert_eq!((b.kind, b.seq), (BreakKind::Rewritten, 10), "{b:?}");

        let mut forged_cp = checkpoint(&s, &base[9]);
        forged_cp.seq = 11;
        let b = check(&base, &[forged_cp], &s).unwrap();
        assert_eq!(b.kind, BreakKind::BadCheckpoint);
    }
}
