//! `copy`: snapshots of one repository stored in another, re-chunked and re-encrypted, each
//! skipped when the destination already has a copy of it.

use crate::backup::copy_snapshot;
use crate::error::Result;
use crate::format::Snapshot;
use crate::id::SnapshotId;
use crate::index::Index;

use super::{Indexed, Locked};

/// What became of one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copied {
    /// Stored in the destination under this id.
    As(SnapshotId),
    /// The destination already had it.
    Present,
}

/// How to copy.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CopyOptions {
    /// Counted as files and bytes are copied (totals: each snapshot's, from its summary).
    pub progress: Option<std::sync::Arc<crate::util::Progress>>,
}

/// What `copy` did, snapshot by snapshot.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CopyReport {
    pub snapshots: Vec<(SnapshotId, Copied)>,
}

impl CopyReport {
    pub fn copied(&self) -> usize {
        self.snapshots
            .iter()
            .filter(|(_, c)| matches!(c, Copied::As(_)))
            .count()
    }

    pub fn skipped(&self) -> usize {
        self.snapshots.len() - self.copied()
    }
}

/// Copies `snapshots` of `src` into `dst`, in order; `done` hears of each as it finishes.
/// The caller holds shared locks on both; `dst_lock` is checked before each snapshot is
/// written.
pub fn copy(
    dst: &Locked,
    src: &Indexed,
    snapshots: &[(SnapshotId, Snapshot)],
    opts: &CopyOptions,
    done: &mut dyn FnMut(&SnapshotId, &Snapshot, Copied),
) -> Result<CopyReport> {
    let (dst_lock, dst) = (dst.guard(), dst.repo());
    let (src_index, src) = (src.index(), src.repo());
    let mut report = CopyReport::default();
    for (id, s) in snapshots {
        // Reloaded each time so later snapshots deduplicate against earlier copies.
        let dst_index = Index::load(dst)?;
        if let (Some(p), Some(sum)) = (&opts.progress, &s.summary) {
            p.set_totals(sum.total_files_processed, sum.total_bytes_processed);
        }
        let progress = opts.progress.clone();
        let c = match copy_snapshot(dst, &dst_index, (src, src_index), id, s, progress, dst_lock)? {
            Some(new) => Copied::As(new),
            None => Copied::Present,
        };
        done(id, s, c);
        report.snapshots.push((*id, c));
    }
    Ok(report)
}
