//! Dedup against what is really stored: blobs of missing or short packs forgotten before a
//! backup, and a check before its snapshot that nothing it deduplicated against went away.

use std::borrow::Cow;
use std::collections::HashSet;

use rayon::prelude::*;

use super::BackupResult;
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::BlobType;
use crate::id::{BlobId, Id, TreeId};
use crate::index::Index;
use crate::problem::Problem;
use crate::repository::Repository;
use crate::tree::load_tree;

pub(super) fn gone_error(id: &BlobId) -> Error {
    Error::NotFound {
        what: "blob this backup reused (deleted while it ran, by a prune that took its lock \
               for stale; no snapshot saved, run the backup again)",
        id: id.to_hex(),
    }
}

pub(super) enum Attempt {
    Saved(Box<BackupResult>),
    /// Not saved: this blob (of this type), which the new snapshot needs, is no longer stored.
    Gone(BlobType, BlobId),
}

/// The index with the blobs of missing or short packs forgotten (one listing of data/), so
/// that they are stored again; each such pack is named (`Missing` or `SizeMismatch`).
pub(super) fn reconcile<'i>(
    repo: &Repository,
    index: &'i Index,
) -> Result<(Cow<'i, Index>, Vec<Problem>)> {
    let bad = index.damaged_packs(&repo.pack_sizes()?);
    if bad.is_empty() {
        return Ok((Cow::Borrowed(index), Vec::new()));
    }
    let notes = bad
        .iter()
        .map(|d| {
            d.problem(format!(
                "{d}: its blobs are stored again; run `cista check`"
            ))
        })
        .collect();
    let mut fixed = index.clone();
    fixed.rank_packs(&bad, true);
    Ok((Cow::Owned(fixed), notes))
}

/// Before the snapshot is written: a blob the new tree `root` needs that is no longer stored.
///
/// Prune deletes packs only after it has stored an index file superseding the ones it read,
/// so while every index file this backup loaded is still there and no newer one supersedes
/// any, nothing it deduplicated against is gone (one listing of index/). Otherwise the new
/// tree is walked against the index as it is now and one listing of data/.
pub(super) fn first_gone(
    repo: &Repository,
    loaded: &Index,
    ours: &[Id],
    root: &TreeId,
) -> Result<Option<(BlobType, BlobId)>> {
    let now: HashSet<Id> = repo.list_ids(FileType::Index)?.into_iter().collect();
    let old: HashSet<Id> = loaded.index_files().iter().copied().collect();
    let mut pruned = !old.iter().all(|f| now.contains(f));
    if !pruned {
        let foreign: Vec<Id> = now
            .iter()
            .filter(|f| !old.contains(f) && !ours.contains(f))
            .filter(|f| !loaded.damaged_files().contains(f))
            .copied()
            .collect();
        let got = foreign
            .par_iter()
            .map(|f| (*f, crate::index::load_index_file(repo, f)))
            .collect();
        // A file that fails verification was not written by a prune (nor by anyone with the
        // key): it supersedes nothing.
        let files = crate::repository::Loaded::sort_out(got)?;
        pruned = files
            .ok
            .iter()
            .any(|(_, f)| !f.supersedes.is_empty() || (old.is_empty() && !f.packs.is_empty()));
    }
    if !pruned {
        return Ok(None);
    }
    let mut fresh = Index::load(repo)?;
    let bad = fresh.damaged_packs(&repo.pack_sizes()?);
    fresh.rank_packs(&bad, true);
    first_missing(repo, &fresh, root)
}

/// The first blob below tree `root` that `index` lacks, with its type, walking each tree once.
pub(super) fn first_missing(
    repo: &Repository,
    index: &Index,
    root: &TreeId,
) -> Result<Option<(BlobType, BlobId)>> {
    let mut seen: HashSet<TreeId> = HashSet::from([*root]);
    let mut level = vec![*root];
    while !level.is_empty() {
        if let Some(t) = level.iter().find(|t| !index.contains(BlobType::Tree, t)) {
            return Ok(Some((BlobType::Tree, *t)));
        }
        let trees = level
            .par_iter()
            .map(|t| load_tree(repo, index, t))
            .collect::<Result<Vec<_>>>()?;
        let mut next = Vec::new();
        for n in trees.iter().flat_map(|t| t.nodes.iter()) {
            if let Some(b) = n
                .content
                .iter()
                .find(|b| !index.contains(BlobType::Data, b))
            {
                return Ok(Some((BlobType::Data, *b)));
            }
            next.extend(n.subtree.filter(|s| seen.insert(*s)));
        }
        level = next;
    }
    Ok(None)
}
