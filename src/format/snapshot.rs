//! Snapshots: the root of one backup and what it did (JSON).

use serde::{Deserialize, Serialize};

use super::{bad, DecodeError};
use crate::id::{Id, TreeId};

/// What a backup did, recorded in its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub data_added: u64,
    /// Bytes of new blobs as stored (compressed and sealed).
    pub data_added_packed: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
    pub backup_start: String,
    pub backup_end: String,
    pub duration_secs: f64,
}

/// A snapshot: the root of one backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// RFC 3339 with the UTC offset of the host that made it, nanosecond precision.
    pub time: String,
    pub tree: TreeId,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    pub parent: Option<Id>,
    pub program_version: String,
    pub summary: Option<Summary>,
    /// For a snapshot rewritten by `tag`: the id it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot serializes")
    }
    pub fn decode(raw: &[u8]) -> Result<Snapshot, DecodeError> {
        let s: Snapshot = serde_json::from_slice(raw).map_err(bad)?;
        s.timestamp().map_err(bad)?;
        Ok(s)
    }
    pub fn timestamp(&self) -> Result<jiff::Timestamp, String> {
        self.time
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("snapshot time {:?}: {e}", self.time))
    }
}
