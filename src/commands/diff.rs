//! `diff`: what changed from one snapshot (or a directory in it) to another (restic's
//! `diff`). Directories whose tree ids are equal hold the same entries, so they are skipped
//! without being read: the cost follows what changed, not the size of the snapshots.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Tree};
use crate::id::{Id, TreeId};
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::{load_tree, path_components};

use super::{Indexed, SnapshotPath};

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Also report entries whose metadata alone changed (`U`; restic's `--metadata`).
    pub metadata: bool,
}

/// One changed entry: restic's `change` message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DiffChange {
    /// The path below the compared directories, `/`-rooted; directories end with `/`.
    pub path: String,
    /// `+` added, `-` removed, or a concatenation of `T` (type changed), `M` (content
    /// changed), `?` (content changed with every other field the same: bitrot, or a backup
    /// that re-read an unchanged file) and `U` (metadata changed, with `metadata`).
    pub modifier: String,
}

/// Counts of one side of a diff: restic's `DiffStat`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DiffStat {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of those blobs.
    pub bytes: u64,
}

/// What `diff` found besides the changes it reported.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DiffReport {
    /// Files present on both sides whose content changed.
    pub changed_files: u64,
    /// Entries only in the second snapshot, and the blobs its changed parts reference that
    /// the first one's changed parts do not.
    pub added: DiffStat,
    /// The same from the first snapshot's side.
    pub removed: DiffStat,
    /// Trees read, including those on the way to a `SNAP:PATH`. Subtrees with equal ids
    /// are never read, so a blob shared with one of them may count as added or removed.
    pub trees_loaded: u64,
}

/// Compares `from` with `to` (each a directory of a snapshot: its `path`, the root when
/// empty), calling `visit` with each change in path order. A `visit` error (a closed pipe)
/// stops the comparison and is returned as `Error::Io`.
pub fn diff(
    ix: &Indexed,
    from: &SnapshotPath,
    to: &SnapshotPath,
    opts: &DiffOptions,
    visit: &mut dyn FnMut(&DiffChange) -> std::io::Result<()>,
) -> Result<DiffReport> {
    let mut d = Differ {
        repo: ix.repo(),
        index: ix.index(),
        metadata: opts.metadata,
        visit,
        report: DiffReport::default(),
        before: HashSet::new(),
        after: HashSet::new(),
    };
    let a = d.directory(&from.snapshot.tree, &from.path)?;
    let b = d.directory(&to.snapshot.tree, &to.path)?;
    d.before.insert((BlobType::Tree, a));
    d.after.insert((BlobType::Tree, b));
    if a != b {
        d.diff_tree("/", &a, &b)?;
    }
    let mut report = d.report;
    let (index, before, after) = (ix.index(), &d.before, &d.after);
    count_blobs(index, after.difference(before), &mut report.added);
    count_blobs(index, before.difference(after), &mut report.removed);
    Ok(report)
}

struct Differ<'a, 'v> {
    repo: &'a Repository,
    index: &'a Index,
    metadata: bool,
    visit: &'v mut dyn FnMut(&DiffChange) -> std::io::Result<()>,
    report: DiffReport,
    /// Blobs referenced by the first side's changed parts, and by the second's.
    before: HashSet<(BlobType, Id)>,
    after: HashSet<(BlobType, Id)>,
}

/// Which side an entry found on one side only is counted on.
#[derive(Clone, Copy)]
enum Side {
    Removed,
    Added,
}

impl Differ<'_, '_> {
    fn load(&mut self, id: &TreeId) -> Result<Tree> {
        self.report.trees_loaded += 1;
        load_tree(self.repo, self.index, id)
    }

    /// The tree of the directory at `path` below `root`.
    fn directory(&mut self, root: &TreeId, path: &str) -> Result<TreeId> {
        let mut id = *root;
        let mut shown = String::new();
        for comp in path_components(path) {
            shown.push('/');
            shown.push_str(&String::from_utf8_lossy(&comp));
            let tree = self.load(&id)?;
            id = match tree.find(&comp) {
                Some(n) if n.kind == NodeKind::Dir => n.subtree.expect("a directory's tree"),
                Some(_) => return Err(Error::Invalid(format!("{shown} is not a directory"))),
                None => {
                    return Err(Error::NotFound {
                        what: "path",
                        id: shown,
                    })
                }
            };
        }
        Ok(id)
    }

    fn emit(&mut self, path: String, modifier: &str) -> Result<()> {
        let c = DiffChange {
            path,
            modifier: modifier.to_string(),
        };
        (self.visit)(&c).map_err(|e| Error::io("write", "<output>", e))
    }

    fn diff_tree(&mut self, prefix: &str, a: &TreeId, b: &TreeId) -> Result<()> {
        let (ta, tb) = (self.load(a)?, self.load(b)?);
        let (mut i, mut j) = (0, 0);
        while i < ta.nodes.len() || j < tb.nodes.len() {
            // Both lists are sorted by name: a merge pairs the entries of equal names.
            let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Equal => {
                    self.both(prefix, &ta.nodes[i], &tb.nodes[j])?;
                    (i, j) = (i + 1, j + 1);
                }
                Ordering::Less => {
                    self.one_side(prefix, &ta.nodes[i], Side::Removed)?;
                    i += 1;
                }
                Ordering::Greater => {
                    self.one_side(prefix, &tb.nodes[j], Side::Added)?;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// An entry present on both sides.
    fn both(&mut self, prefix: &str, x: &Node, y: &Node) -> Result<()> {
        blobs(&mut self.before, x);
        blobs(&mut self.after, y);
        let mut path = format!("{prefix}{}", y.name_lossy());
        if y.kind == NodeKind::Dir {
            path.push('/');
        }
        let mut modifier = String::new();
        if x.kind != y.kind {
            modifier.push('T');
        }
        let same_meta = without_content(x) == without_content(y);
        if x.kind == NodeKind::File && y.kind == NodeKind::File && x.content != y.content {
            modifier.push('M');
            self.report.changed_files += 1;
            if same_meta {
                modifier.push('?');
            }
        } else if self.metadata && !same_meta {
            modifier.push('U');
        }
        if !modifier.is_empty() {
            self.emit(path.clone(), &modifier)?;
        }
        match (x.subtree, y.subtree) {
            (Some(sa), Some(sb)) if sa != sb => self.diff_tree(&path, &sa, &sb),
            _ => Ok(()),
        }
    }

    /// An entry on one side only, and for a directory everything below it.
    fn one_side(&mut self, prefix: &str, n: &Node, side: Side) -> Result<()> {
        let (modifier, set) = match side {
            Side::Removed => ("-", &mut self.before),
            Side::Added => ("+", &mut self.after),
        };
        blobs(set, n);
        let stat = match side {
            Side::Removed => &mut self.report.removed,
            Side::Added => &mut self.report.added,
        };
        match n.kind {
            NodeKind::File => stat.files += 1,
            NodeKind::Dir => stat.dirs += 1,
            _ => stat.others += 1,
        }
        let mut path = format!("{prefix}{}", n.name_lossy());
        if n.kind == NodeKind::Dir {
            path.push('/');
        }
        self.emit(path.clone(), modifier)?;
        if let Some(sub) = n.subtree {
            let tree = self.load(&sub)?;
            for child in &tree.nodes {
                self.one_side(&path, child, side)?;
            }
        }
        Ok(())
    }
}

/// The node with its content and subtree cleared: what `U` and `?` compare.
fn without_content(n: &Node) -> Node {
    let mut n = n.clone();
    n.content.clear();
    n.digest = None;
    n.subtree = None;
    n
}

fn blobs(set: &mut HashSet<(BlobType, Id)>, n: &Node) {
    set.extend(n.content.iter().map(|b| (BlobType::Data, *b)));
    set.extend(n.subtree.map(|t| (BlobType::Tree, t)));
}

fn count_blobs<'a>(
    index: &Index,
    blobs: impl Iterator<Item = &'a (BlobType, Id)>,
    stat: &mut DiffStat,
) {
    for (ty, id) in blobs {
        match ty {
            BlobType::Data => stat.data_blobs += 1,
            BlobType::Tree => stat.tree_blobs += 1,
        }
        stat.bytes += index.get(*ty, id).map_or(0, |l| l.raw_len as u64);
    }
}
