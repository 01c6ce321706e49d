//! The states a command runs in: a repository under a shared lock ([`Locked`]), under an
//! exclusive one ([`Exclusive`]), and locked with its index loaded ([`Indexed`]).
//!
//! Commands take the state they need, so a library user cannot run prune unlocked or a
//! restore against an index loaded before the lock was taken: "indexed and locked" is a
//! type, not a convention. The engine below (backup, restore, check, prune) takes the parts
//! as arguments and is not public.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::Node;
use crate::id::TreeId;
use crate::index::Index;
use crate::lock::LockGuard;
use crate::repository::Repository;

/// How a command locks the repository.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LockOptions {
    /// Retry for up to this long while another process holds a conflicting lock
    /// (restic's `--retry-lock`).
    pub wait: Duration,
    /// Take no lock (restic's `--no-lock`): for reading a repository on read-only storage.
    /// Refused by [`Repository::lock_exclusive`].
    pub no_lock: bool,
}

impl LockOptions {
    /// Waits up to `wait` for a conflicting lock to go.
    pub fn wait(wait: Duration) -> LockOptions {
        LockOptions {
            wait,
            no_lock: false,
        }
    }

    /// Takes no lock.
    pub fn none() -> LockOptions {
        LockOptions {
            wait: Duration::ZERO,
            no_lock: true,
        }
    }
}

/// A repository under a shared lock (or none, when the caller asked for `no_lock`): what
/// commands that read or only add take. Dropping it removes the lock.
pub struct Locked<'r> {
    repo: &'r Repository,
    guard: Option<LockGuard>,
}

/// A repository under an exclusive lock: what commands that delete or rewrite take. Only
/// granted when the repository is not append-only.
pub struct Exclusive<'r> {
    repo: &'r Repository,
    guard: LockGuard,
}

/// A locked repository with its index, loaded after the lock was taken.
pub struct Indexed<'r> {
    locked: Locked<'r>,
    index: Index,
}

impl Repository {
    /// Takes a shared lock as `opts` say.
    pub fn lock(&self, opts: &LockOptions) -> Result<Locked<'_>> {
        let guard = if opts.no_lock {
            None
        } else {
            Some(LockGuard::acquire_retry(self, false, opts.wait)?)
        };
        Ok(Locked { repo: self, guard })
    }

    /// Takes an exclusive lock; refused (`Error::AppendOnly`) on an append-only repository
    /// and when `opts.no_lock` is set, since a command that deletes must keep others out.
    pub fn lock_exclusive(&self, opts: &LockOptions) -> Result<Exclusive<'_>> {
        self.refuse_if_append_only()?;
        if opts.no_lock {
            return Err(Error::Invalid(
                "this command deletes data and always locks the repository".into(),
            ));
        }
        let guard = LockGuard::acquire_retry(self, true, opts.wait)?;
        Ok(Exclusive { repo: self, guard })
    }
}

impl<'r> Locked<'r> {
    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    /// The lock, unless the caller asked for none.
    pub fn guard(&self) -> Option<&LockGuard> {
        self.guard.as_ref()
    }

    /// Fails when the lock may have been lost (see [`LockGuard::check`]); `Ok` unlocked.
    pub fn check(&self) -> Result<()> {
        self.guard.as_ref().map_or(Ok(()), LockGuard::check)
    }

    /// Loads the index (every index file that opens; damaged ones are skipped with a
    /// warning, as restic does).
    pub fn indexed(self) -> Result<Indexed<'r>> {
        let index = Index::load(self.repo)?;
        Ok(Indexed {
            locked: self,
            index,
        })
    }
}

impl<'r> Exclusive<'r> {
    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    pub fn guard(&self) -> &LockGuard {
        &self.guard
    }

    /// Fails when the lock may have been lost.
    pub fn check(&self) -> Result<()> {
        self.guard.check()
    }
}

impl<'r> Indexed<'r> {
    pub fn repo(&self) -> &'r Repository {
        self.locked.repo
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn guard(&self) -> Option<&LockGuard> {
        self.locked.guard()
    }

    /// Reads the index again: after a command that added to it, for the next one under the
    /// same lock.
    pub fn reload(&mut self) -> Result<()> {
        self.index = Index::load(self.locked.repo)?;
        Ok(())
    }

    /// The node at `path` below the tree `root` (the snapshot root itself for an empty path).
    pub fn find_node(&self, root: &TreeId, path: &str) -> Result<Node> {
        crate::tree::find_node(self.repo(), &self.index, root, path)
    }

    /// Gives the lock back without the index.
    pub fn into_locked(self) -> Locked<'r> {
        self.locked
    }
}
