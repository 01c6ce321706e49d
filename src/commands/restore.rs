//! `restore`, `dump` and `ls`: what a snapshot holds, written to disk, to a writer, or listed.

use crate::error::{Error, Result};
use crate::format::{Node, NodeKind, Snapshot};
use crate::restore::{DumpOptions, DumpSummary, RestoreOptions, RestoreSummary};
use crate::tree::{find_node, walk};

use super::Indexed;

/// What a restore wrote and what it could not.
pub type RestoreReport = RestoreSummary;

/// Restores `path` of `snapshot` (all of it when empty) under `opts.target`.
pub fn restore(
    ix: &Indexed,
    snapshot: &Snapshot,
    path: &str,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    crate::restore::restore(ix.repo(), ix.index(), snapshot, path, opts)
}

/// What `dump` wrote.
pub type DumpReport = DumpSummary;

/// Writes `path` of `snapshot` to `out`: a file's content, or a directory as an archive
/// (`opts.archive`: a tar of the entries below it, by paths relative to it).
///
/// Unless `opts.stream`, every blob of a file is read and verified, and its whole-file digest
/// checked, before the first byte of it is written: a damaged file fails the call having
/// written nothing of it (for a directory, the entries before it stay written and the archive
/// has no end, so a reader sees a cut archive). The error names the file, the blob and its
/// pack. With `opts.stream` a file is written as it is read, and a failure leaves its first
/// bytes written (a pipe's reader must then see the failure: `dump | psql` is unsafe).
pub fn dump(
    ix: &Indexed,
    snapshot: &Snapshot,
    path: &str,
    opts: &DumpOptions,
    out: &mut dyn std::io::Write,
) -> Result<DumpReport> {
    let node = find_node(ix.repo(), ix.index(), &snapshot.tree, path)?;
    let shown = format!("/{}", path.trim_matches('/'));
    crate::restore::dump(ix.repo(), ix.index(), &node, &shown, opts, out)
}

/// What `ls` listed.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LsReport {
    pub entries: u64,
}

/// Calls `visit` with the path and node of `path` in `snapshot` and, for a directory, of
/// everything below it, depth first (the snapshot root itself is not visited). A `visit`
/// error (a closed pipe) stops the listing and is returned as `Error::Io`.
pub fn ls(
    ix: &Indexed,
    snapshot: &Snapshot,
    path: &str,
    visit: &mut dyn FnMut(&str, &Node) -> std::io::Result<()>,
) -> Result<LsReport> {
    let node = find_node(ix.repo(), ix.index(), &snapshot.tree, path)?;
    let base = format!("/{}", path.trim_matches('/'));
    let base = if base == "/" { String::new() } else { base };
    let mut entries = 0u64;
    let mut show = |p: &str, n: &Node| {
        entries += 1;
        visit(p, n).map_err(|e| Error::io("write", "<output>", e))
    };
    if node.kind != NodeKind::Dir || node.name != b"/" {
        show(&base, &node)?;
    }
    if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
        walk(ix.repo(), ix.index(), &sub, &base, &mut show)?;
    }
    Ok(LsReport { entries })
}
