//! `restore`, `dump` and `ls`: what a snapshot holds, written to disk, to a writer, or listed.

use crate::error::{Error, Result};
use crate::format::{Node, NodeKind, Snapshot};
use crate::restore::{RestoreOptions, RestoreSummary};
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
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DumpReport {
    pub bytes: u64,
}

/// Writes the file at `path` in `snapshot` to `out`; its digest is checked at the end, and a
/// mismatch fails the call (after the bytes were written: a pipe's reader must see the
/// failure, as `dump | psql` exits non-zero).
pub fn dump(
    ix: &Indexed,
    snapshot: &Snapshot,
    path: &str,
    out: &mut dyn std::io::Write,
) -> Result<DumpReport> {
    let node = find_node(ix.repo(), ix.index(), &snapshot.tree, path)?;
    let bytes = crate::restore::dump(ix.repo(), ix.index(), &node, out)?;
    Ok(DumpReport { bytes })
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
