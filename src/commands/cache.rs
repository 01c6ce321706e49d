//! `cache`: the local caches of remote repositories, listed or cleaned up (restic's `cache`).

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{list_caches, remove_old_caches, CacheDir};
use crate::error::Result;

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CacheOptions {
    /// The directory holding every repository's cache.
    pub dir: PathBuf,
    /// Remove the caches unused for longer than `max_age`.
    pub cleanup: bool,
    pub max_age: Duration,
    /// List each cache's size (walks every file).
    pub sizes: bool,
}

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CacheReport {
    /// The caches found (when listing), oldest use first.
    pub caches: Vec<CacheDir>,
    /// The caches removed (when cleaning up).
    pub removed: Vec<CacheDir>,
}

pub fn cache(opts: &CacheOptions) -> Result<CacheReport> {
    let mut r = CacheReport::default();
    if opts.cleanup {
        r.removed = remove_old_caches(&opts.dir, opts.max_age)?;
    } else {
        r.caches = list_caches(&opts.dir, opts.sizes)?;
    }
    Ok(r)
}
