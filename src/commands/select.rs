//! Which snapshots a command works on: ids, prefixes or `latest`, else all a filter selects.

use crate::error::Result;
use crate::format::Snapshot;
use crate::id::SnapshotId;
use crate::repository::{Repository, SnapshotFilter};

/// The snapshots `ids` name (ids, unique prefixes or `latest`, each once, in the order
/// given), or when `ids` is empty every snapshot `filter` selects, oldest first.
pub fn select_snapshots(
    repo: &Repository,
    ids: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if ids.is_empty() {
        return Ok(repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect());
    }
    let mut out: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for i in ids {
        let r = repo.resolve_snapshot(i, filter)?;
        if !out.iter().any(|(id, _)| *id == r.0) {
            out.push(r);
        }
    }
    Ok(out)
}

/// A snapshot and a path inside it, from restic's `ID:PATH` syntax (`latest:/etc`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SnapshotPath {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// The path inside the snapshot; empty for all of it.
    pub path: String,
}

/// Resolves `spec` (`ID`, `ID:PATH`, `latest`, `latest:PATH`), honouring `filter` for
/// `latest`.
pub fn resolve_snapshot_path(
    repo: &Repository,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<SnapshotPath> {
    let (s, path) = spec.split_once(':').unwrap_or((spec, ""));
    let (id, snapshot) = repo.resolve_snapshot(s, filter)?;
    Ok(SnapshotPath {
        id,
        snapshot,
        path: path.to_string(),
    })
}
