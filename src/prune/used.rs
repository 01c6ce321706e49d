//! What prune may not delete: every blob the snapshots reach, and the refusal to go on when a
//! pack is shorter than its index entries.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{BlobType, NodeKind, Snapshot};
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::load_tree;

/// Every snapshot, and every blob reachable from one. Fails if any tree cannot be loaded or
/// any data blob is missing from the index: pruning on a partial view would delete data
/// still needed.
#[allow(clippy::type_complexity)]
pub fn used_blobs(
    repo: &Repository,
    index: &Index,
) -> Result<(Vec<(SnapshotId, Snapshot)>, HashSet<(BlobType, BlobId)>)> {
    let snaps = repo.all_snapshots()?.require_all(
        "snapshot",
        "prune needs every snapshot, or it would delete data a damaged one still uses; \
         `cista forget <id>` removes a damaged snapshot, `cista check` lists every damaged object",
    )?;
    let mut used = HashSet::new();
    let mut level: Vec<TreeId> = Vec::new();
    for (_, s) in &snaps {
        if used.insert((BlobType::Tree, s.tree)) {
            level.push(s.tree);
        }
    }
    while !level.is_empty() {
        let found: Vec<(Vec<TreeId>, Vec<BlobId>)> = level
            .par_iter()
            .map(|t| {
                let tree = load_tree(repo, index, t)?;
                let mut subs = Vec::new();
                let mut data = Vec::new();
                for n in tree.nodes {
                    match n.kind {
                        NodeKind::Dir => subs.extend(n.subtree),
                        NodeKind::File => data.extend(n.content),
                        _ => {}
                    }
                }
                Ok((subs, data))
            })
            .collect::<Result<_>>()?;
        let mut next = Vec::new();
        for (subs, data) in found {
            for d in data {
                if used.insert((BlobType::Data, d)) && !index.contains(BlobType::Data, &d) {
                    return Err(Error::NotFound {
                        what:
                            "data blob (referenced by a snapshot; nothing was deleted, run check)",
                        id: d.to_hex(),
                    });
                }
            }
            for s in subs {
                if used.insert((BlobType::Tree, s)) {
                    next.push(s);
                }
            }
        }
        level = next;
    }
    Ok((snaps, used))
}

/// A pack shorter than its index entries need has lost blobs or its header: repacking would
/// fail half way, and keeping its index entries would hide the loss. Prune stops, deleting
/// nothing, and says how to get past it. (A missing pack is handled by the plan: its blobs
/// count as absent, and prune refuses only if a snapshot needs one.)
pub(super) fn refuse_short_packs(index: &Index, stored: &HashMap<PackId, u64>) -> Result<()> {
    let short: Vec<_> = index
        .damaged_packs(stored)
        .into_iter()
        .filter(|d| d.stored.is_some())
        .collect();
    let Some(first) = short.first() else {
        return Ok(());
    };
    let path = crate::backend::object_path(FileType::Pack, &first.id.to_hex());
    Err(Error::Corrupt {
        what: "pack",
        id: first.id.to_hex(),
        reason: format!(
            "{} bytes stored, {} needed by its index entries ({} short pack(s) in all); nothing \
             was deleted. Run `cista check` to see what is affected, back up those paths again \
             (a backup stores the blobs of a damaged pack anew), then delete {path} from the \
             repository and prune again: prune then drops the pack from the index, and refuses \
             only if a snapshot still needs a blob stored nowhere else (forget that snapshot)",
            first.stored.unwrap_or(0),
            first.needed,
            short.len()
        ),
    })
}
