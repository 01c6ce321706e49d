//! `prune`: delete what no snapshot uses, repacking partly used packs.
//!
//! Safe order, so that a kill at any point leaves a repository `check` calls sound:
//! 1. find every blob the snapshots reach (abort, deleting nothing, if one is missing);
//! 2. copy the used blobs of packs chosen for repacking into new packs (each blob is opened and
//!    verified first, so damage is never copied);
//! 3. write new index files naming only used blobs, superseding all old ones;
//! 4. delete the old index files;
//! 5. delete packs no index names any more;
//! 6. delete verification records that say nothing about the snapshots left.
//!
//! Steps 2–3 leave at most unindexed packs behind; after step 3 every index entry points at a
//! pack that exists until step 5, which only removes packs the new index does not name.
//!
//! Step 1 and every decision are made by [`PrunePlan::new`] (`plan.rs`, with the reachability
//! walk in `used.rs`), which reads but writes nothing, so a dry run is the plan alone; steps
//! 2–5 are [`PrunePlan::execute`] (`execute.rs`, the copying in `repack.rs`).

mod execute;
mod options;
mod plan;
mod repack;
mod used;

use serde::Serialize;

pub use options::MaxUnused;
pub use plan::PrunePlan;

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PruneOptions {
    pub dry_run: bool,
    pub max_unused: MaxUnused,
    pub max_repack_size: Option<u64>,
    pub repack_uncompressed: bool,
    /// Counted as packs are repacked (`files` are packs here), for a progress display.
    pub progress: Option<std::sync::Arc<crate::util::Progress>>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            max_unused: MaxUnused::Percent(5.0),
            max_repack_size: None,
            repack_uncompressed: false,
            progress: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub blobs_used: usize,
    pub blobs_unused: usize,
    pub bytes_used: u64,
    pub bytes_unused: u64,
    pub packs_kept: usize,
    pub bytes_kept: u64,
    pub packs_repacked: usize,
    pub bytes_repacked: u64,
    pub packs_deleted: usize,
    pub bytes_deleted: u64,
    pub packs_unindexed_deleted: usize,
    pub packs_written: usize,
    pub bytes_written: u64,
    pub index_files_written: usize,
    pub index_files_deleted: usize,
    pub unused_after: u64,
    /// Packs actually deleted (unused, repacked and unindexed ones) and their bytes.
    pub packs_removed: usize,
    pub bytes_removed: u64,
    /// Verification records that say nothing about the snapshots left (format §19): to
    /// delete, and deleted.
    pub verifications_deleted: usize,
    pub verifications_removed: usize,
    /// Objects prune meant to delete that the store holds under retention (S3 Object Lock):
    /// left in place, and removed by a prune after the date shown.
    pub retained: Vec<RetainedObject>,
    pub bytes_retained: u64,
    /// Objects whose delete failed (a put-only credential, say). The repository is consistent
    /// without deleting them; a later prune retries.
    pub delete_failed: Vec<crate::problem::Problem>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RetainedObject {
    pub path: String,
    pub size: u64,
    #[serde(flatten)]
    pub retention: crate::backend::Retention,
}

#[cfg(test)]
mod tests;
