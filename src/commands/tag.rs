//! `tag`: snapshots rewritten with tags added, removed or replaced (the old one deleted, the
//! new one naming it as its original).

use crate::error::Result;
use crate::format::Snapshot;
use crate::id::SnapshotId;

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

/// Splits tag options as restic does: each value may hold several tags separated by commas;
/// empty ones are dropped.
pub fn split_tags(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_on_commas_and_empty_ones_go() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split_tags(&v(&["a,b", "", "c,,d"])),
            v(&["a", "b", "c", "d"])
        );
        assert!(split_tags(&[]).is_empty());
    }
}
