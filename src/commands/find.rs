//! `find`: the entries whose name or path matches a pattern, or the files and directories
//! that hold given blob or tree ids, across snapshots (restic's `find`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Snapshot};
use crate::id::{BlobId, Id, SnapshotId, TreeId};
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::load_tree;

use super::Indexed;

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FindOptions {
    /// Globs (`*`, `?`, `[a-z]`, `**`). One without `/` is matched against each entry's name;
    /// one with `/` against its whole path: from the snapshot root when it starts with `/`,
    /// else against any tail of the path (`sub/*.txt` finds `/a/sub/x.txt`).
    pub patterns: Vec<String>,
    /// Match regardless of case.
    pub ignore_case: bool,
    /// Only entries modified at or after this (restic's `--oldest`).
    pub oldest: Option<jiff::Timestamp>,
    /// Only entries modified at or before this (restic's `--newest`).
    pub newest: Option<jiff::Timestamp>,
}

/// What `find` searched and found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FindReport {
    pub snapshots: u64,
    pub hits: u64,
    pub trees_loaded: u64,
}

/// Calls `visit` with the snapshot, path and node of every entry of `snapshots` (in the order
/// given) that matches one of `opts.patterns` and the modification window. A `visit` error
/// (a closed pipe) stops the search and is returned as `Error::Io`.
pub fn find(
    ix: &Indexed,
    snapshots: &[(SnapshotId, Snapshot)],
    opts: &FindOptions,
    visit: &mut dyn FnMut(&SnapshotId, &str, &Node) -> std::io::Result<()>,
) -> Result<FindReport> {
    let m = Matcher::new(opts)?;
    let mut w = Walker::new(ix.repo(), ix.index());
    let mut report = FindReport::default();
    for (id, s) in snapshots {
        report.snapshots += 1;
        w.walk(&s.tree, "", m.max_depth, &mut |_, path, n| {
            if m.matches(path, n) {
                report.hits += 1;
                visit(id, path, n).map_err(|e| Error::io("write", "<output>", e))?;
            }
            Ok(())
        })?;
    }
    report.trees_loaded = w.loaded;
    Ok(report)
}

/// A blob or tree `find_ids` found, and where (restic's `find --blob/--tree` objects).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FoundObject {
    pub kind: BlobType,
    pub id: Id,
    /// The file holding the blob, or the directory the tree is.
    pub path: String,
    /// The tree holding that file or directory; `None` for a snapshot's root tree.
    pub parent_tree: Option<TreeId>,
    pub snapshot: SnapshotId,
}

/// Calls `visit` once for each distinct blob (`kind` Data) or tree (`kind` Tree) of
/// `snapshots` whose id starts with one of the hex `prefixes`, with the first place it is
/// found, snapshots searched in the order given.
pub fn find_ids(
    ix: &Indexed,
    snapshots: &[(SnapshotId, Snapshot)],
    kind: BlobType,
    prefixes: &[String],
    visit: &mut dyn FnMut(&FoundObject) -> std::io::Result<()>,
) -> Result<FindReport> {
    let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_ascii_lowercase()).collect();
    if let Some(p) = prefixes
        .iter()
        .find(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Error::Invalid(format!(
            "{p:?} is not a hex id or id prefix"
        )));
    }
    let wanted = |id: &Id| {
        let hex = id.to_hex();
        prefixes.iter().any(|p| hex.starts_with(p.as_str()))
    };
    let mut seen: HashSet<Id> = HashSet::new();
    let mut w = Walker::new(ix.repo(), ix.index());
    let mut report = FindReport::default();
    let mut found = |report: &mut FindReport, o: FoundObject| -> Result<()> {
        if seen.insert(o.id) {
            report.hits += 1;
            visit(&o).map_err(|e| Error::io("write", "<output>", e))?;
        }
        Ok(())
    };
    for (sid, s) in snapshots {
        report.snapshots += 1;
        if kind == BlobType::Tree && wanted(&s.tree) {
            let root = object(kind, s.tree, "/", None, sid);
            found(&mut report, root)?;
        }
        w.walk(&s.tree, "", usize::MAX, &mut |parent, path, n| {
            let ids: Vec<BlobId> = match (kind, n.kind) {
                (BlobType::Tree, NodeKind::Dir) => n.subtree.into_iter().collect(),
                (BlobType::Data, NodeKind::File) => n.content.clone(),
                _ => Vec::new(),
            };
            for id in ids.into_iter().filter(|id| wanted(id)) {
                found(&mut report, object(kind, id, path, Some(*parent), sid))?;
            }
            Ok(())
        })?;
    }
    report.trees_loaded = w.loaded;
    Ok(report)
}

fn object(
    kind: BlobType,
    id: Id,
    path: &str,
    parent: Option<TreeId>,
    s: &SnapshotId,
) -> FoundObject {
    FoundObject {
        kind,
        id,
        path: path.to_string(),
        parent_tree: parent,
        snapshot: *s,
    }
}

/// The compiled patterns and the modification window.
struct Matcher {
    names: GlobSet,
    paths: GlobSet,
    oldest: Option<i128>,
    newest: Option<i128>,
    /// How deep a match can lie: the component count of the deepest absolute pattern when
    /// every pattern is absolute and has no `**`, else unlimited; deeper trees are not read.
    max_depth: usize,
}

impl Matcher {
    fn new(opts: &FindOptions) -> Result<Matcher> {
        if opts.patterns.is_empty() {
            return Err(Error::Invalid("find needs at least one pattern".into()));
        }
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let mut max_depth = 0usize;
        for p in &opts.patterns {
            let glob = |s: &str| {
                GlobBuilder::new(s)
                    .literal_separator(true)
                    .case_insensitive(opts.ignore_case)
                    .build()
                    .map_err(|e| Error::Invalid(format!("pattern {p:?}: {e}")))
            };
            let t = p.trim_end_matches('/');
            if !t.contains('/') {
                names.add(glob(t)?);
                max_depth = usize::MAX;
            } else if t.starts_with('/') {
                paths.add(glob(t)?);
                let depth = t.split('/').filter(|c| !c.is_empty()).count();
                max_depth = if t.contains("**") {
                    usize::MAX
                } else {
                    max_depth.max(depth)
                };
            } else {
                paths.add(glob(&format!("**/{t}"))?);
                max_depth = usize::MAX;
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Invalid(format!("patterns: {e}")))
        };
        Ok(Matcher {
            names: build(names)?,
            paths: build(paths)?,
            oldest: opts.oldest.map(|t| t.as_nanosecond()),
            newest: opts.newest.map(|t| t.as_nanosecond()),
            max_depth,
        })
    }

    fn matches(&self, path: &str, n: &Node) -> bool {
        let mtime = n.mtime_ns as i128;
        (self.names.is_match(OsStr::from_bytes(&n.name)) || self.paths.is_match(path))
            && self.oldest.is_none_or(|o| mtime >= o)
            && self.newest.is_none_or(|o| mtime <= o)
    }
}

/// Walks trees depth first, counting the trees it reads.
struct Walker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    loaded: u64,
}

impl<'a> Walker<'a> {
    fn new(repo: &'a Repository, index: &'a Index) -> Walker<'a> {
        Walker {
            repo,
            index,
            loaded: 0,
        }
    }

    /// Calls `f` with the tree holding it, the path and the node of every entry below `root`
    /// down to `max_depth` components.
    fn walk(
        &mut self,
        root: &TreeId,
        dir: &str,
        max_depth: usize,
        f: &mut dyn FnMut(&TreeId, &str, &Node) -> Result<()>,
    ) -> Result<()> {
        if max_depth == 0 {
            return Ok(());
        }
        let tree = load_tree(self.repo, self.index, root)?;
        self.loaded += 1;
        for n in &tree.nodes {
            let p = format!("{dir}/{}", n.name_lossy());
            f(root, &p, n)?;
            if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                self.walk(&sub, &p, max_depth - 1, f)?;
            }
        }
        Ok(())
    }
}
