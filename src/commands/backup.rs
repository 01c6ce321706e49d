//! `backup`: files, a stream or a command's output into a new snapshot.

use crate::backup::{BackupOptions, BackupResult, Source};
use crate::error::Result;

use super::Indexed;

/// What a backup saved and met on the way.
pub type BackupReport = BackupResult;

/// Backs up `source` into the repository `ix` holds locked and indexed. Source files that
/// cannot be read are reported in `warnings` (the snapshot is saved without them).
pub fn backup(ix: &Indexed, source: Source, opts: &BackupOptions) -> Result<BackupReport> {
    crate::backup::backup(ix.repo(), ix.index(), source, opts, ix.guard())
}
