//! Prune's decisions: which packs are kept, repacked or deleted, read from the index, the
//! stored packs and the snapshots, with nothing written.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::used::{refuse_short_packs, used_blobs};
use super::{MaxUnused, PruneOptions, PruneReport};
use crate::error::{Error, Result};
use crate::format::{self, BlobEntry, BlobType, IndexFile, Snapshot};
use crate::id::{BlobId, Id, PackId, SnapshotId};
use crate::index::{load_index_file, Index};
use crate::repository::{Repository, VerificationLog};

/// One indexed pack that is stored, and what of it is used.
#[derive(Clone, Debug)]
pub(super) struct PackPlan {
    pub(super) id: PackId,
    pub(super) size: u64,
    /// Entries whose copy in this pack is the one kept.
    pub(super) keep: Vec<BlobEntry>,
    pub(super) unused_bytes: u64,
    /// A kept blob is stored uncompressed (`--repack-uncompressed` repacks such packs).
    pub(super) uncompressed: bool,
}

/// What a prune will do, and the numbers its report shows before anything is written
/// (`execute` adds what it wrote and removed).
#[derive(Debug)]
pub struct PrunePlan {
    pub(super) report: PruneReport,
    /// Packs the new index names as they are, with their used entries.
    pub(super) keep: Vec<PackPlan>,
    /// In the order their blobs are copied: the most unused first.
    pub(super) repack: Vec<PackPlan>,
    /// Indexed packs with nothing used.
    pub(super) delete: Vec<PackPlan>,
    /// Stored packs no index names, and their sizes.
    pub(super) unindexed: Vec<(PackId, u64)>,
    /// Every stored index file, superseded leftovers included: the new index supersedes them
    /// all, so a leftover never comes back into force when its superseder is deleted.
    pub(super) old_index: Vec<Id>,
    /// Superseded leftovers alone are reason enough to write a new index.
    pub(super) has_superseded: bool,
    /// Verification records that say nothing about the snapshots left (format §19).
    pub(super) records: Vec<Id>,
    pub(super) repack_uncompressed: bool,
    pub(super) progress: Option<std::sync::Arc<crate::util::Progress>>,
}

/// The per-pack tally: what is used where, before any choice.
struct Tally {
    packs: Vec<PackPlan>,
    blobs_used: usize,
    blobs_unused: usize,
}

/// The packs split by fate, and the unused bytes left in those kept.
#[derive(Debug)]
pub(super) struct Choice {
    pub(super) keep: Vec<PackPlan>,
    pub(super) repack: Vec<PackPlan>,
    pub(super) delete: Vec<PackPlan>,
    pub(super) bytes_repacked: u64,
    pub(super) unused_after: u64,
}

impl PrunePlan {
    /// Plans a prune of `repo`, whose complete index is `index`. Fails, with nothing written,
    /// if a pack is short or a blob a snapshot needs is stored nowhere.
    pub fn new(repo: &Repository, index: &Index, opts: &PruneOptions) -> Result<PrunePlan> {
        let index_ids = index.index_files().to_vec();
        let old_index: Vec<Id> = index_ids
            .iter()
            .chain(index.superseded_files())
            .copied()
            .collect();
        let files: Vec<IndexFile> = repo.in_flight(|| {
            index_ids
                .par_iter()
                .map(|id| load_index_file(repo, id))
                .collect::<Result<_>>()
        })?;
        let stored: HashMap<PackId, u64> = repo.pack_sizes()?;
        refuse_short_packs(index, &stored)?;
        let (snapshots, used) = used_blobs(repo, index)?;
        let tally = tally(&files, &stored, &used)?;
        let records = superseded_records(repo, &snapshots);

        let indexed: HashSet<PackId> = tally.packs.iter().map(|p| p.id).collect();
        let unindexed: Vec<(PackId, u64)> = stored
            .iter()
            .filter(|(id, _)| !indexed.contains(id))
            .map(|(i, s)| (*i, *s))
            .collect();
        let bytes_used = tally
            .packs
            .iter()
            .flat_map(|p| p.keep.iter())
            .map(|e| e.length as u64)
            .sum();
        let bytes_unused = tally.packs.iter().map(|p| p.unused_bytes).sum();
        let c = choose(tally.packs, bytes_used, opts);
        let report = PruneReport {
            dry_run: opts.dry_run,
            snapshots: snapshots.len(),
            blobs_used: tally.blobs_used,
            blobs_unused: tally.blobs_unused,
            bytes_used,
            bytes_unused,
            packs_kept: c.keep.len(),
            bytes_kept: c.keep.iter().map(|p| p.size).sum(),
            packs_repacked: c.repack.len(),
            bytes_repacked: c.bytes_repacked,
            packs_deleted: c.delete.len(),
            bytes_deleted: c.delete.iter().map(|p| p.size).sum::<u64>()
                + unindexed.iter().map(|(_, s)| s).sum::<u64>(),
            packs_unindexed_deleted: unindexed.len(),
            unused_after: c.unused_after,
            verifications_deleted: records.len(),
            ..Default::default()
        };
        Ok(PrunePlan {
            report,
            keep: c.keep,
            repack: c.repack,
            delete: c.delete,
            unindexed,
            old_index,
            has_superseded: !index.superseded_files().is_empty(),
            records,
            repack_uncompressed: opts.repack_uncompressed,
            progress: opts.progress.clone(),
        })
    }

    /// The report as far as the plan goes: a dry run's whole report.
    pub fn report(&self) -> &PruneReport {
        &self.report
    }

    /// Packs kept as they are.
    pub fn keep_packs(&self) -> Vec<PackId> {
        self.keep.iter().map(|p| p.id).collect()
    }

    /// Packs whose used blobs are copied into new packs, in the order they are copied.
    pub fn repack_packs(&self) -> Vec<PackId> {
        self.repack.iter().map(|p| p.id).collect()
    }

    /// Indexed packs with nothing used, then stored packs no index names: deleted outright.
    pub fn delete_packs(&self) -> Vec<PackId> {
        let unindexed = self.unindexed.iter().map(|(id, _)| *id);
        self.delete.iter().map(|p| p.id).chain(unindexed).collect()
    }

    /// Verification records deleted as superseded.
    pub fn delete_verifications(&self) -> &[Id] {
        &self.records
    }

    /// Nothing to repack, delete or rewrite: executing leaves the repository as it is.
    pub(super) fn nothing_to_do(&self) -> bool {
        self.packs_untouched() && self.records.is_empty()
    }

    /// No pack to repack or delete and no index to rewrite.
    pub(super) fn packs_untouched(&self) -> bool {
        self.repack.is_empty()
            && self.delete.is_empty()
            && self.unindexed.is_empty()
            && self.report.blobs_unused == 0
            && !self.has_superseded
    }
}

/// The verification records to delete: those that say nothing about `snapshots` any more.
/// Damaged records are left (check reports them); records that cannot be read at all are
/// left for a later prune, with a warning: they hold no data, so they stop no prune.
fn superseded_records(repo: &Repository, snapshots: &[(SnapshotId, Snapshot)]) -> Vec<Id> {
    match repo.all_verifications() {
        Ok(loaded) => VerificationLog::new(loaded.ok).superseded(snapshots),
        Err(e) => {
            tracing::warn!("verification records left as they are: {e}");
            Vec::new()
        }
    }
}

/// Sorts each indexed pack's entries into used and unused. The first indexed copy of a used
/// blob is kept; other copies count as unused, as do the blobs of a pack that is not stored
/// (such a pack gets no plan). Fails if a used blob has no stored copy.
fn tally(
    files: &[IndexFile],
    stored: &HashMap<PackId, u64>,
    used: &HashSet<(BlobType, BlobId)>,
) -> Result<Tally> {
    let mut claimed: HashSet<(BlobType, BlobId)> = HashSet::new();
    let mut packs: Vec<PackPlan> = Vec::new();
    let mut seen_packs = HashSet::new();
    for p in files.iter().flat_map(|f| f.packs.iter()) {
        if !seen_packs.insert(p.id) {
            continue;
        }
        let size = stored.get(&p.id).copied();
        let mut plan = PackPlan {
            id: p.id,
            size: size.unwrap_or(0),
            keep: Vec::new(),
            unused_bytes: 0,
            uncompressed: false,
        };
        for e in &p.blobs {
            let k = (e.ty, e.id);
            if used.contains(&k) && size.is_some() && claimed.insert(k) {
                plan.uncompressed |= e.length as u64 == format::uncompressed_sealed_len(e.raw_len);
                plan.keep.push(*e);
            } else {
                plan.unused_bytes += e.length as u64;
            }
        }
        if size.is_some() {
            packs.push(plan);
        }
    }
    if let Some(missing) = used.iter().find(|k| !claimed.contains(k)) {
        return Err(Error::NotFound {
            what: "blob (its pack is missing; nothing was deleted, run check)",
            id: missing.1.to_hex(),
        });
    }
    // Every entry of every index file counts, a pack named twice included.
    let entries: usize = files
        .iter()
        .flat_map(|f| f.packs.iter())
        .map(|p| p.blobs.len())
        .sum();
    Ok(Tally {
        packs,
        blobs_used: claimed.len(),
        blobs_unused: entries - claimed.len(),
    })
}

/// Decides each pack's fate: nothing used, delete; all used (and compressed, if asked), keep;
/// otherwise repack, the most unused first, until the unused bytes left in kept packs are
/// within `--max-unused` — but never more than `--max-repack-size` in all, and always the
/// uncompressed ones `--repack-uncompressed` asks for (as the size cap allows).
pub(super) fn choose(packs: Vec<PackPlan>, bytes_used: u64, opts: &PruneOptions) -> Choice {
    let (mut delete, mut partly, mut keep) = (vec![], vec![], vec![]);
    for p in packs {
        if p.keep.is_empty() {
            delete.push(p);
        } else if p.unused_bytes > 0 || (opts.repack_uncompressed && p.uncompressed) {
            partly.push(p);
        } else {
            keep.push(p);
        }
    }
    // Percent of the size after prune: unused / (used + unused) <= pc.
    let limit = match opts.max_unused {
        MaxUnused::Unlimited => u64::MAX,
        MaxUnused::Bytes(b) => b,
        MaxUnused::Percent(pc) => (bytes_used as f64 * pc / (100.0 - pc)) as u64,
    };
    let mut unused_left: u64 = partly.iter().map(|p| p.unused_bytes).sum();
    partly.sort_by(|a, b| {
        let ra = a.unused_bytes as f64 / a.size.max(1) as f64;
        let rb = b.unused_bytes as f64 / b.size.max(1) as f64;
        rb.partial_cmp(&ra).unwrap().then(a.id.cmp(&b.id))
    });
    let mut repack = Vec::new();
    let mut bytes_repacked = 0u64;
    for p in partly {
        let forced = opts.repack_uncompressed && p.uncompressed;
        let within_budget = opts
            .max_repack_size
            .is_none_or(|m| bytes_repacked + p.size <= m);
        if (forced || unused_left > limit) && within_budget {
            unused_left -= p.unused_bytes;
            bytes_repacked += p.size;
            repack.push(p);
        } else {
            keep.push(p);
        }
    }
    Choice {
        keep,
        repack,
        delete,
        bytes_repacked,
        unused_after: unused_left,
    }
}
