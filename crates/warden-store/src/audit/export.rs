//! The signed export of the trail: records and checkpoints as JSON lines, and a manifest
//! (counts, each chain's head, SHA-256 of both files, the registered signers and their
//! endorsements) signed with the audit key, so an auditor can check it offline. Written by
//! `warden audit export` (a directory of three files) and by the console's download (one
//! file, the bundle: the manifest on its first line, then the records' lines, then the
//! checkpoints'); `warden audit verify --export` reads either through [`verify`].

use std::io::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chain::{self, Break, BreakKind, ChainReport, Checkpoint, Record};
use super::trust::endorsed_from;
use super::{Signer, Verifier};
use crate::{AuditSigner, Endorsement};

pub const RECORDS_FILE: &str = "records.jsonl";
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const EXPORT_FORMAT: &str = "warden-audit-export/1";

/// Why an export could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The export is not one this version reads; the message says where.
    #[error("{0}")]
    Malformed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created: String,
    /// Records in the export.
    pub count: u64,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    pub chains: Vec<ManifestChain>,
    pub records_sha256: String,
    pub checkpoints_sha256: String,
    pub public_key: String,
    pub key_id: String,
    /// Every registered checkpoint signer and the endorsements between them, so that an
    /// export signed by several instances verifies offline from any one's key.
    #[serde(default)]
    pub signers: Vec<AuditSigner>,
    #[serde(default)]
    pub endorsements: Vec<Endorsement>,
    /// Ed25519 over the manifest with this field empty.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestChain {
    pub chain: String,
    pub count: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The chain head: the last record's hash.
    pub head: Option<String>,
}

/// The bytes the manifest's signature covers: the manifest with `signature` empty.
pub fn manifest_bytes(m: &Manifest) -> Result<Vec<u8>, serde_json::Error> {
    let mut unsigned = serde_json::to_value(m)?;
    unsigned["signature"] = serde_json::Value::String(String::new());
    serde_json::to_vec(&unsigned)
}

/// Writes an export chain by chain, hashing as it goes; [`ExportWriter::finish`] signs the
/// manifest.
#[derive(Debug, Default)]
pub struct ExportWriter {
    records: Sha256,
    checkpoints: Sha256,
    count: u64,
    first_ts: Option<String>,
    last_ts: Option<String>,
    chains: Vec<ManifestChain>,
}

impl ExportWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one chain's `records` (in chain order) and `checkpoints` to the two outputs.
    pub fn add_chain(
        &mut self,
        chain: &str,
        records: &[Record],
        checkpoints: &[Checkpoint],
        records_out: &mut impl Write,
        checkpoints_out: &mut impl Write,
    ) -> Result<(), ExportError> {
        for r in records {
            let line = format!("{}\n", serde_json::to_string(r)?);
            self.records.update(line.as_bytes());
            records_out.write_all(line.as_bytes())?;
            if self.first_ts.as_ref().is_none_or(|f| &r.ts < f) {
                self.first_ts = Some(r.ts.clone());
            }
            if self.last_ts.as_ref().is_none_or(|l| &r.ts > l) {
                self.last_ts = Some(r.ts.clone());
            }
        }
        for cp in checkpoints {
            let line = format!("{}\n", serde_json::to_string(cp)?);
            self.checkpoints.update(line.as_bytes());
            checkpoints_out.write_all(line.as_bytes())?;
        }
        self.count += records.len() as u64;
        self.chains.push(ManifestChain {
            chain: chain.to_string(),
            count: records.len() as u64,
            first_seq: records.first().map(|r| r.seq),
            last_seq: records.last().map(|r| r.seq),
            head: records.last().map(|r| r.hash.clone()),
        });
        Ok(())
    }

    /// The manifest of everything added, signed by `signer`.
    pub fn finish(
        self,
        signer: &Signer,
        signers: Vec<AuditSigner>,
        endorsements: Vec<Endorsement>,
    ) -> Result<Manifest, ExportError> {
        let mut m = Manifest {
            format: EXPORT_FORMAT.into(),
            created: warden_core::audit::now(),
            count: self.count,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            chains: self.chains,
            records_sha256: hex::encode(self.records.finalize()),
            checkpoints_sha256: hex::encode(self.checkpoints.finalize()),
            public_key: signer.verifier().public_hex(),
            key_id: signer.verifier().key_id().to_string(),
            signers,
            endorsements,
            signature: String::new(),
        };
        m.signature = signer.sign(&manifest_bytes(&m)?);
        Ok(m)
    }
}

/// The single-file form of an export: the manifest as one line, then the records' lines,
/// then the checkpoints' (exactly the bytes of `records.jsonl` and `checkpoints.jsonl`).
pub fn bundle(m: &Manifest, records: &[u8], checkpoints: &[u8]) -> Result<Vec<u8>, ExportError> {
    let mut out = serde_json::to_vec(m)?;
    out.push(b'\n');
    out.reserve(records.len() + checkpoints.len());
    out.extend_from_slice(records);
    out.extend_from_slice(checkpoints);
    Ok(out)
}

/// The parts of an export as read back: the manifest and each file's lines.
#[derive(Debug)]
pub struct ExportParts {
    pub manifest: Manifest,
    pub records: Vec<String>,
    pub checkpoints: Vec<String>,
}

/// Reads a bundle ([`bundle`]): the manifest's `count` says where the records end.
pub fn parse_bundle(text: &str) -> Result<ExportParts, ExportError> {
    let mut lines = text.lines();
    let first = lines
        .next()
        .ok_or_else(|| ExportError::Malformed("the export file is empty".into()))?;
    let manifest: Manifest = serde_json::from_str(first).map_err(|e| {
        ExportError::Malformed(format!(
            "the first line is not a Warden audit manifest: {e}"
        ))
    })?;
    let n = usize::try_from(manifest.count).unwrap_or(usize::MAX);
    let rest: Vec<String> = lines.map(str::to_string).collect();
    if rest.len() < n {
        return Err(ExportError::Malformed(format!(
            "the manifest lists {} records; the file holds {} lines after it",
            manifest.count,
            rest.len()
        )));
    }
    let mut records = rest;
    let checkpoints = records.split_off(n);
    Ok(ExportParts {
        manifest,
        records,
        checkpoints,
    })
}

/// SHA-256 of `lines`, each with its newline, as the export hashed them.
fn hash_lines(lines: &[String]) -> String {
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// What checking an export found.
#[derive(Debug)]
pub enum ExportVerdict {
    /// The manifest's signature does not match `key_id`, or that key is not trusted.
    BadManifest { key_id: String },
    /// The named file is not the one the manifest signed.
    AlteredFile(&'static str),
    /// Each chain checked; `keys` are the keys trusted, `untrusted` the signers left out.
    Checked {
        reports: Vec<ChainReport>,
        keys: Vec<Verifier>,
        untrusted: Vec<String>,
    },
}

/// Checks an export against `anchor`: the manifest's signature (by a key trusted from the
/// anchor), both files' hashes, then every chain (links, checkpoints, and that it holds the
/// records and head the manifest lists).
pub fn verify(parts: &ExportParts, anchor: Verifier) -> Result<ExportVerdict, ExportError> {
    let m = &parts.manifest;
    if m.format != EXPORT_FORMAT {
        return Err(ExportError::Malformed(format!(
            "manifest format '{}' is not {EXPORT_FORMAT}",
            m.format
        )));
    }
    // The manifest's signers count only as far as endorsements reach from the anchor; the
    // manifest itself must be signed by a key so reached.
    let (keys, untrusted) = endorsed_from(anchor, &m.signers, &m.endorsements);
    let signed = manifest_bytes(m)?;
    if !keys
        .iter()
        .find(|k| k.key_id() == m.key_id)
        .is_some_and(|k| k.verify(&signed, &m.signature))
    {
        return Ok(ExportVerdict::BadManifest {
            key_id: m.key_id.clone(),
        });
    }
    if hash_lines(&parts.records) != m.records_sha256 {
        return Ok(ExportVerdict::AlteredFile(RECORDS_FILE));
    }
    if hash_lines(&parts.checkpoints) != m.checkpoints_sha256 {
        return Ok(ExportVerdict::AlteredFile(CHECKPOINTS_FILE));
    }
    let mut records: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
    for (i, l) in parts.records.iter().enumerate() {
        let r: Record = serde_json::from_str(l)
            .map_err(|e| ExportError::Malformed(format!("{RECORDS_FILE} line {}: {e}", i + 1)))?;
        records.entry(r.chain.clone()).or_default().push(r);
    }
    let mut cps: std::collections::BTreeMap<String, Vec<Checkpoint>> = Default::default();
    for (i, l) in parts.checkpoints.iter().enumerate() {
        let c: Checkpoint = serde_json::from_str(l).map_err(|e| {
            ExportError::Malformed(format!("{CHECKPOINTS_FILE} line {}: {e}", i + 1))
        })?;
        cps.entry(c.chain.clone()).or_default().push(c);
    }
    let mut reports = Vec::new();
    for mc in &m.chains {
        let mut rs = records.remove(&mc.chain).unwrap_or_default();
        rs.sort_by_key(|r| (r.seq, r.id));
        let cs = cps.remove(&mc.chain).unwrap_or_default();
        let mut r = chain::verify_chain_with_keys(&mc.chain, &rs, &cs, Some(&keys));
        if r.problem.is_none() && (r.records != mc.count || r.head != mc.head) {
            r.problem = Some(Break {
                kind: BreakKind::Truncated,
                seq: r.last_seq.unwrap_or(0) + 1,
                id: None,
                detail: format!(
                    "the manifest lists {} records ending in head {:?}; the file has {}",
                    mc.count, mc.head, r.records
                ),
            });
        }
        reports.push(r);
    }
    Ok(ExportVerdict::Checked {
        reports,
        keys,
        untrusted,
    })
}
