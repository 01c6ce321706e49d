//! Verification records: which snapshots a check or drill verified, when, how, and whether
//! they passed (JSON, format §19).

use serde::{Deserialize, Serialize};

use super::{bad, DecodeError};
use crate::id::{SnapshotId, TreeId};

/// The longest text field (`hostname`, `username`, `program_version`, `subset`, `detail`), in
/// bytes; `clip` shortens what a writer puts there.
pub const MAX_RECORD_TEXT: usize = 1024;
/// The most snapshots one record names.
pub const MAX_RECORD_SNAPSHOTS: usize = 1 << 20;

/// How the snapshots of a record were verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    /// `check`: keys, index, packs against the index, snapshots and every tree.
    Check,
    /// `check --read-data`: that, and every pack read and every blob opened.
    CheckReadData,
    /// `check --read-data-subset`: that, with some of the packs read (`subset`, `fraction`).
    CheckReadDataSubset,
    /// `drill`: one snapshot's trees recomputed to the root, restored and read back.
    Drill,
}

impl VerificationMethod {
    /// The name JSON gives it.
    pub fn name(self) -> &'static str {
        match self {
            VerificationMethod::Check => "check",
            VerificationMethod::CheckReadData => "check_read_data",
            VerificationMethod::CheckReadDataSubset => "check_read_data_subset",
            VerificationMethod::Drill => "drill",
        }
    }
}

/// Whether the verification found nothing wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationResult {
    Passed,
    Failed,
}

impl VerificationResult {
    pub fn of(passed: bool) -> VerificationResult {
        if passed {
            VerificationResult::Passed
        } else {
            VerificationResult::Failed
        }
    }

    /// `passed` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            VerificationResult::Passed => "passed",
            VerificationResult::Failed => "failed",
        }
    }
}

/// A verification record's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// When the verification ended (the time format of snapshots).
    pub time: String,
    pub method: VerificationMethod,
    /// `check_read_data_subset`: the subset as given (`2/5`, `5%`, `500M`).
    #[serde(default)]
    pub subset: Option<String>,
    /// `check_read_data_subset`: the share of the stored pack bytes that was read, 0 to 1.
    #[serde(default)]
    pub fraction: Option<f64>,
    pub result: VerificationResult,
    /// The snapshots verified: every one a check loaded, the one a drill drilled.
    pub snapshots: Vec<SnapshotId>,
    /// `drill`: the root tree id recomputed from the decoded trees (the snapshot's own when
    /// it passed); null when the drill stopped before the root.
    #[serde(default)]
    pub tree: Option<TreeId>,
    /// Bytes read and verified: pack bytes (check), restored file bytes (drill).
    pub bytes_read: u64,
    pub hostname: String,
    pub username: String,
    pub program_version: String,
    /// What it covered or found, in a few words.
    #[serde(default)]
    pub detail: String,
}

impl Verification {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("verification record serializes")
    }

    /// Decodes and checks the bounds: the time parses, text fields and the snapshot list are
    /// within their limits, and a fraction lies in 0..=1.
    pub fn decode(raw: &[u8]) -> Result<Verification, DecodeError> {
        let v: Verification = serde_json::from_slice(raw).map_err(bad)?;
        v.timestamp().map_err(bad)?;
        let texts = [
            ("hostname", Some(&v.hostname)),
            ("username", Some(&v.username)),
            ("program_version", Some(&v.program_version)),
            ("subset", v.subset.as_ref()),
            ("detail", Some(&v.detail)),
        ];
        for (name, t) in texts {
            if t.is_some_and(|t| t.len() > MAX_RECORD_TEXT) {
                return Err(bad(format!(
                    "{name} is longer than {MAX_RECORD_TEXT} bytes"
                )));
            }
        }
        if v.snapshots.len() > MAX_RECORD_SNAPSHOTS {
            return Err(bad(format!(
                "names {} snapshots, more than {MAX_RECORD_SNAPSHOTS}",
                v.snapshots.len()
            )));
        }
        if v.fraction.is_some_and(|f| !(0.0..=1.0).contains(&f)) {
            return Err(bad("fraction is not between 0 and 1"));
        }
        Ok(v)
    }

    pub fn timestamp(&self) -> Result<jiff::Timestamp, String> {
        self.time
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("verification time {:?}: {e}", self.time))
    }

    pub fn passed(&self) -> bool {
        self.result == VerificationResult::Passed
    }
}

/// `s` cut to at most `MAX_RECORD_TEXT` bytes, at a character boundary.
pub fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_RECORD_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
