//! The restore plan: the snapshot's tree walked once into items, with includes and excludes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::{Item, RestoreOptions};
use crate::error::{Error, Result};
use crate::format::{NodeKind, Snapshot};
use crate::id::Id;
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::{find_node, load_tree};

/// The items to restore, directories before their contents: `subpath` of `snapshot` with
/// the options' includes and excludes applied.
pub(super) fn plan(
    repo: &Repository,
    index: &Index,
    snapshot: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<Vec<Item>> {
    let start = find_node(repo, index, &snapshot.tree, subpath)?;
    let mut planner = Planner {
        repo,
        index,
        includes: if opts.includes.is_empty() {
            None
        } else {
            Some(patterns(&opts.includes)?)
        },
        excludes: patterns(&opts.excludes)?,
        items: Vec::new(),
    };
    let base = subpath.trim_end_matches('/');
    let base = if base.is_empty() || base.starts_with('/') {
        base.to_string()
    } else {
        format!("/{base}")
    };
    match start.kind {
        NodeKind::Dir => {
            let tree = start.subtree.expect("dir");
            planner.walk(&tree, &base, &opts.target, None, false)?;
        }
        _ => planner.items.push(Item {
            snap_path: base.clone(),
            dest: opts.target.join(OsStr::from_bytes(&start.name)),
            parent: None,
            node: start.clone(),
        }),
    }
    Ok(planner.items)
}

pub(super) fn patterns(p: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for s in p {
        let s = s.trim_end_matches('/');
        let full = if s.starts_with('/') {
            s.to_string()
        } else {
            format!("**/{s}")
        };
        b.add(
            GlobBuilder::new(&full)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::Invalid(format!("pattern {s:?}: {e}")))?,
        );
    }
    b.build()
        .map_err(|e| Error::Invalid(format!("patterns: {e}")))
}

pub(super) struct Planner<'a> {
    pub(super) repo: &'a Repository,
    pub(super) index: &'a Index,
    pub(super) includes: Option<GlobSet>,
    pub(super) excludes: GlobSet,
    pub(super) items: Vec<Item>,
}

impl Planner<'_> {
    /// Adds the children of a tree, restored in directory item `parent`; returns whether
    /// anything below was selected.
    pub(super) fn walk(
        &mut self,
        tree_id: &Id,
        snap_dir: &str,
        dest: &Path,
        parent: Option<usize>,
        included: bool,
    ) -> Result<bool> {
        let tree = load_tree(self.repo, self.index, tree_id)?;
        let mut any = false;
        for node in tree.nodes {
            let snap_path = format!("{}/{}", snap_dir, node.name_lossy());
            if self.excludes.is_match(&snap_path) {
                continue;
            }
            let inc = included
                || self
                    .includes
                    .as_ref()
                    .is_none_or(|g| g.is_match(&snap_path));
            let dest = dest.join(OsStr::from_bytes(&node.name));
            if node.kind == NodeKind::Dir {
                let pos = self.items.len();
                let sub = node.subtree.expect("decoded dirs have subtrees");
                self.items.push(Item {
                    snap_path: snap_path.clone(),
                    dest: dest.clone(),
                    parent,
                    node,
                });
                let below = self.walk(&sub, &snap_path, &dest, Some(pos), inc)?;
                if inc || below {
                    any = true;
                } else {
                    self.items.truncate(pos);
                }
            } else if inc {
                any = true;
                self.items.push(Item {
                    snap_path,
                    dest,
                    parent,
                    node,
                });
            }
        }
        Ok(any)
    }
}
