//! `config`: the repository's settings, shown or changed.

use crate::error::Result;
use crate::format::{ChunkerParams, LARGE_BLOB};
use crate::id::Id;
use crate::repository::Repository;

use super::LockOptions;

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConfigOptions {
    /// Turn the repository's append-only setting on or off; `None` changes nothing.
    pub append_only: Option<bool>,
    /// How to take the exclusive lock a change needs.
    pub lock: LockOptions,
}

/// The repository's settings (after any change).
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct ConfigReport {
    pub id: Id,
    pub version: u32,
    pub chunker: ChunkerParams,
    pub pack_size: u32,
    pub compression_level: i32,
    /// The level blobs of `large_blob_size` bytes and more are compressed at.
    pub large_blob_level: i32,
    #[serde(skip)]
    pub large_blob_size: usize,
    pub append_only: bool,
}

/// Applies `opts` (a change under an exclusive lock, so no running command sees two
/// settings) and reports the settings.
pub fn config(repo: &mut Repository, opts: &ConfigOptions) -> Result<ConfigReport> {
    if let Some(on) = opts
        .append_only
        .filter(|on| *on != repo.config().append_only)
    {
        let mut l = opts.lock.clone();
        l.no_lock = false;
        let guard = crate::lock::LockGuard::acquire_retry(repo, true, l.wait)?;
        repo.set_append_only(on)?;
        drop(guard);
    }
    let c = repo.config();
    Ok(ConfigReport {
        id: c.id,
        version: c.version,
        chunker: c.chunker,
        pack_size: c.pack_size,
        compression_level: c.compression_level,
        large_blob_level: c.blob_level(LARGE_BLOB),
        large_blob_size: LARGE_BLOB,
        append_only: c.append_only,
    })
}
