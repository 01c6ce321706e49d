//! The library's commands as the tests call them on a repository they opened themselves
//! (often over a hooked or failing store): each takes the lock state the command needs.
//! Backups, restores and checks take no lock files (`LockOptions::none()`), so tests that
//! count a store's writes count only the command's own; prune always locks.
#![allow(dead_code)]

use cista::commands::{self, LockOptions};
use cista::{
    BackupOptions, BackupResult, CheckOptions, CheckReport, Node, PruneOptions, PruneReport,
    Repository, RestoreOptions, RestoreSummary, Result, Snapshot, Source, TreeId,
};

pub fn lib_backup(repo: &Repository, source: Source, opts: &BackupOptions) -> Result<BackupResult> {
    let ix = repo.lock(&LockOptions::none())?.indexed()?;
    commands::backup(&ix, source, opts)
}

pub fn lib_prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let ex = repo.lock_exclusive(&LockOptions::default())?;
    commands::prune(&ex, opts)
}

pub fn lib_check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    commands::check(&repo.lock(&LockOptions::none())?, opts)
}

pub fn lib_restore(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &str,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    let ix = repo.lock(&LockOptions::none())?.indexed()?;
    commands::restore(&ix, snapshot, path, opts)
}

/// The node at `path` below the tree `root`.
pub fn lib_find_node(repo: &Repository, root: &TreeId, path: &str) -> Result<Node> {
    repo.lock(&LockOptions::none())?
        .indexed()?
        .find_node(root, path)
}
