//! `stats`: the size of what the selected snapshots restore, or of the distinct blobs they
//! reference (restic's `restore-size` and `raw-data` modes).

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{BlobType, NodeKind, Snapshot};
use crate::id::{Id, SnapshotId};
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::walk;

use super::Indexed;

/// What to count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatsMode {
    /// Files and bytes a restore of each snapshot writes (shared files counted per snapshot).
    #[default]
    RestoreSize,
    /// Distinct blobs, their plaintext and stored sizes.
    RawData,
}

impl std::str::FromStr for StatsMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "restore-size" => Ok(StatsMode::RestoreSize),
            "raw-data" => Ok(StatsMode::RawData),
            other => Err(Error::Invalid(format!(
                "unknown stats mode {other:?}: use restore-size or raw-data"
            ))),
        }
    }
}

/// The counts, shaped as restic's `stats --json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StatsReport {
    RestoreSize {
        snapshots_count: usize,
        total_size: u64,
        total_file_count: u64,
    },
    RawData {
        snapshots_count: usize,
        total_blob_count: usize,
        total_uncompressed_size: u64,
        total_size: u64,
        compression_ratio: f64,
    },
}

/// Counts over `snapshots`.
pub fn stats(
    ix: &Indexed,
    snapshots: &[(SnapshotId, Snapshot)],
    mode: StatsMode,
) -> Result<StatsReport> {
    let (repo, index) = (ix.repo(), ix.index());
    match mode {
        StatsMode::RestoreSize => restore_size(repo, index, snapshots),
        StatsMode::RawData => raw_data(repo, index, snapshots),
    }
}

fn restore_size(
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
) -> Result<StatsReport> {
    let (mut size, mut files) = (0u64, 0u64);
    for (_, s) in snapshots {
        walk(repo, index, &s.tree, "", &mut |_, n| {
            if n.kind != NodeKind::Dir {
                files += 1;
                size += n.size;
            }
            Ok(())
        })?;
    }
    Ok(StatsReport::RestoreSize {
        snapshots_count: snapshots.len(),
        total_size: size,
        total_file_count: files,
    })
}

fn raw_data(
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
) -> Result<StatsReport> {
    let mut seen = HashSet::new();
    let (mut raw, mut stored) = (0u64, 0u64);
    let mut add = |ty: BlobType, id: &Id| -> Result<()> {
        if seen.insert((ty, *id)) {
            let loc = index.get(ty, id).ok_or_else(|| Error::NotFound {
                what: ty.blob_name(),
                id: format!("{id} (not in the index)"),
            })?;
            raw += loc.raw_len as u64;
            stored += loc.length as u64;
        }
        Ok(())
    };
    for (_, s) in snapshots {
        add(BlobType::Tree, &s.tree)?;
        walk(repo, index, &s.tree, "", &mut |_, n| {
            for b in &n.content {
                add(BlobType::Data, b)?;
            }
            if let Some(t) = n.subtree {
                add(BlobType::Tree, &t)?;
            }
            Ok(())
        })?;
    }
    Ok(StatsReport::RawData {
        snapshots_count: snapshots.len(),
        total_blob_count: seen.len(),
        total_uncompressed_size: raw,
        total_size: stored,
        compression_ratio: if stored > 0 {
            raw as f64 / stored as f64
        } else {
            0.0
        },
    })
}
