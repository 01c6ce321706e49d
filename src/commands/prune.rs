//! `prune`: plan what to delete and repack, then do it, under an exclusive lock.

use crate::error::Result;
use crate::index::Index;
use crate::prune::{PruneOptions, PrunePlan, PruneReport};

use super::Exclusive;

/// Decides what prune would delete and repack (reads the whole index; refuses when an index
/// file or snapshot is damaged, since the plan would rest on a partial view).
pub fn plan_prune(ex: &Exclusive, opts: &PruneOptions) -> Result<PrunePlan> {
    let index = Index::load_complete(ex.repo())?;
    PrunePlan::new(ex.repo(), &index, opts)
}

/// Carries out `plan`: repacks, writes the new index, then deletes, checking the lock
/// before anything is deleted.
pub fn execute_prune(ex: &Exclusive, plan: PrunePlan) -> Result<PruneReport> {
    plan.execute(ex.repo(), Some(ex.guard()))
}

/// Plans and (unless `opts.dry_run`) executes.
pub fn prune(ex: &Exclusive, opts: &PruneOptions) -> Result<PruneReport> {
    let plan = plan_prune(ex, opts)?;
    if opts.dry_run {
        return Ok(plan.report().clone());
    }
    execute_prune(ex, plan)
}
