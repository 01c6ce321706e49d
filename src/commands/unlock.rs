//! `unlock`: removes stale locks (or every lock).

use crate::error::Result;
use crate::repository::Repository;

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct UnlockOptions {
    /// Remove live locks too, not only stale ones.
    pub remove_all: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
#[non_exhaustive]
pub struct UnlockReport {
    pub removed: usize,
}

pub fn unlock(repo: &Repository, opts: &UnlockOptions) -> Result<UnlockReport> {
    let removed = crate::lock::unlock(repo, opts.remove_all)?;
    Ok(UnlockReport { removed })
}
