//! `tag`: snapshots rewritten with tags added, removed or replaced (the old one deleted, the
//! new one naming it as its original).

use crate::error::Result;
use crate::format::Snapshot;
use crate::id::SnapshotId;

pub use crate::util::split_tags;

use super::Exclusive;

/// Tag changes; each list may hold comma-separated tags (`--add a,b`).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TagOptions {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    /// Replace the tags with these (applied before `remove` and `add`).
    pub set: Option<Vec<String>>,
}

impl TagOptions {
    /// Nothing to add, remove or set.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.set.is_none()
    }
}

/// What `tag` changed.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct TagReport {
    /// (old id, new id) of each rewritten snapshot.
    pub changed: Vec<(SnapshotId, SnapshotId)>,
    /// Snapshots whose tags were already as asked.
    pub unchanged: Vec<SnapshotId>,
}

/// Applies `opts` to every snapshot of `targets`, checking `lock` (exclusive) before each.
pub fn tag(
    ex: &Exclusive,
    targets: &[(SnapshotId, Snapshot)],
    opts: &TagOptions,
) -> Result<TagReport> {
    let repo = ex.repo();
    repo.refuse_if_append_only()?;
    let (add, remove) = (split_tags(&opts.add), split_tags(&opts.remove));
    let set = opts.set.as_deref().map(split_tags);
    let mut report = TagReport::default();
    for (id, _) in targets {
        ex.check()?;
        match repo.change_tags(id, &add, &remove, set.as_deref())? {
            Some(new) => report.changed.push((*id, new)),
            None => report.unchanged.push(*id),
        }
    }
    Ok(report)
}
