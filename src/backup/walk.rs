//! The walk: directories in parallel, nodes from metadata, unchanged files from the parent,
//! trees built bottom-up; the targets placed at their absolute paths (`Trie`).

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use super::source::{kind_of, list_dir, ns};
use super::Archiver;
use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Tree, Xattr};
use crate::id::TreeId;
use crate::problem::{ObjectKind, Problem, ProblemKind};
use crate::tree::load_tree;

impl Archiver<'_> {
    /// The parent's tree for the directory at `path`. One that cannot be loaded is named,
    /// the directory is scanned afresh, and its id is not trusted for deduplication: were the
    /// fresh tree the same, the new snapshot would otherwise point at the damaged copy.
    pub(super) fn load_parent_tree(&self, path: &Path, id: &TreeId) -> Option<Tree> {
        match load_tree(self.repo, self.index, id) {
            Ok(t) => Some(t),
            Err(e) => {
                self.distrusted.lock().unwrap().insert(*id);
                let shown = path.display();
                let message = format!(
                    "{shown}: parent snapshot's tree {id} could not be loaded ({e}); scanned afresh"
                );
                self.notice(
                    Problem::from_error(&e, ProblemKind::Unreadable)
                        .with_object(ObjectKind::Tree, id)
                        .with_path(shown.to_string())
                        .with_message(message),
                );
                None
            }
        }
    }

    pub(super) fn user_name(&self, uid: u32) -> String {
        let mut g = self.names.lock().unwrap();
        g.0.entry(uid)
            .or_insert_with(|| crate::util::user_name(uid))
            .clone()
    }

    pub(super) fn group_name(&self, gid: u32) -> String {
        let mut g = self.names.lock().unwrap();
        g.1.entry(gid)
            .or_insert_with(|| crate::util::group_name(gid))
            .clone()
    }

    pub(super) fn node_from_meta(&self, name: Vec<u8>, path: &Path, m: &Metadata) -> Node {
        let mut n = Node::new(name, kind_of(m));
        n.mode = m.mode() & 0o7777;
        n.uid = m.uid();
        n.gid = m.gid();
        n.user = self.user_name(n.uid);
        n.group = self.group_name(n.gid);
        n.mtime_ns = ns(m.mtime(), m.mtime_nsec());
        n.ctime_ns = ns(m.ctime(), m.ctime_nsec());
        if self.opts.with_atime {
            n.atime_ns = ns(m.atime(), m.atime_nsec());
        }
        n.size = if n.kind == NodeKind::File {
            m.size()
        } else {
            0
        };
        n.inode = m.ino();
        n.device = m.dev();
        n.links = m.nlink();
        if matches!(n.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            n.rdev = m.rdev();
        }
        match xattr::list(path) {
            Ok(names) => {
                for xn in names {
                    match xattr::get(path, &xn) {
                        Ok(Some(value)) => n.xattrs.push(Xattr {
                            name: xn.as_bytes().to_vec(),
                            value,
                        }),
                        Ok(None) => {}
                        Err(e) => self.warn(path, &format!("read xattr {xn:?}"), e),
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
            Err(e) => self.warn(path, "list xattrs", e),
        }
        n.xattrs.sort();
        n
    }

    /// The parent's node is reusable when the file looks unchanged and all its blobs exist.
    pub(super) fn unchanged(&self, n: &Node, p: &Node) -> bool {
        !self.opts.force
            && p.kind == NodeKind::File
            && p.digest.is_some()
            && n.size == p.size
            && n.mtime_ns == p.mtime_ns
            && (self.opts.ignore_ctime || n.ctime_ns == p.ctime_ns)
            && (self.opts.ignore_inode || n.inode == p.inode)
            && p.content
                .iter()
                .all(|b| self.index.contains(BlobType::Data, b))
    }

    /// Archives one directory entry. `Ok(None)` means skipped (excluded or unreadable).
    pub(super) fn entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
        dev: u64,
    ) -> Result<Option<Node>> {
        if self.excludes.excluded(path, &name) {
            return Ok(None);
        }
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(path, "stat", e);
                return Ok(None);
            }
        };
        if self.excludes.too_large(&m) {
            return Ok(None);
        }
        let mut n = self.node_from_meta(name, path, &m);
        match n.kind {
            NodeKind::File => {
                self.c.files.fetch_add(1, Relaxed);
                if let Some(p) = &self.opts.progress {
                    p.add_files(1);
                    p.set_current(&path.to_string_lossy());
                }
                if let Some(p) = parent.filter(|p| self.unchanged(&n, p)) {
                    n.content = p.content.clone();
                    n.digest = p.digest;
                    self.c.files_unmodified.fetch_add(1, Relaxed);
                    self.c.bytes.fetch_add(n.size, Relaxed);
                    if let Some(p) = &self.opts.progress {
                        p.add_bytes(n.size);
                    }
                    return Ok(Some(n));
                }
                if !self.read_file(path, &mut n, &m)? {
                    return Ok(None);
                }
                match parent {
                    Some(p) if p.kind == NodeKind::File && p.content == n.content => {
                        &self.c.files_unmodified
                    }
                    Some(_) => &self.c.files_changed,
                    None => &self.c.files_new,
                }
                .fetch_add(1, Relaxed);
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => n.link_target = t.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    self.warn(path, "read symlink", e);
                    return Ok(None);
                }
            },
            NodeKind::Dir => {
                let parent_tree = self.parent_subtree(path, parent);
                let tree = if self.opts.one_file_system && m.dev() != dev {
                    // A mount point: kept as an empty directory.
                    Tree::default()
                } else {
                    self.dir(path, parent_tree.as_ref(), dev)?
                };
                self.finish_dir(&mut n, tree, parent)?;
            }
            _ => {}
        }
        Ok(Some(n))
    }

    pub(super) fn parent_subtree(&self, path: &Path, parent: Option<&Node>) -> Option<Tree> {
        let p = parent?;
        let sub = p.subtree.filter(|_| p.kind == NodeKind::Dir)?;
        self.load_parent_tree(path, &sub)
    }

    pub(super) fn finish_dir(
        &self,
        n: &mut Node,
        mut tree: Tree,
        parent: Option<&Node>,
    ) -> Result<TreeId> {
        let id = self.add_blob(BlobType::Tree, &tree.encode())?;
        n.subtree = Some(id);
        match parent {
            Some(p) if p.subtree == Some(id) => &self.c.dirs_unmodified,
            Some(_) => &self.c.dirs_changed,
            None => &self.c.dirs_new,
        }
        .fetch_add(1, Relaxed);
        Ok(id)
    }

    /// Archives a directory's entries in parallel.
    pub(super) fn dir(&self, path: &Path, parent: Option<&Tree>, dev: u64) -> Result<Tree> {
        let mut names = match list_dir(path) {
            Ok((names, None)) => names,
            Ok((names, Some(e))) => {
                self.warn(path, "read directory", e);
                names
            }
            Err(e) => {
                self.warn(path, "read directory", e);
                Vec::new()
            }
        };
        names.sort();
        let has = |t: &[u8]| names.binary_search_by(|n| n.as_slice().cmp(t)).is_ok();
        if let Some(tags) = self.tags_of(path, has) {
            names.retain(|n| tags.iter().all(|t| t == n));
        }
        let nodes = names
            .into_par_iter()
            .map(|name| {
                let p = path.join(OsStr::from_bytes(&name));
                let pn = parent.and_then(|t| t.find(&name));
                self.entry(&p, name, pn, dev)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tree {
            nodes: nodes.into_iter().flatten().collect(),
        })
    }

    /// Builds the tree that holds the backup targets at their absolute paths.
    pub(super) fn virtual_dir(
        &self,
        prefix: &Path,
        trie: &Trie,
        parent: Option<&Tree>,
    ) -> Result<Tree> {
        // Targets in a tagged directory are left out as its other entries would be.
        let tags = match trie.children.iter().any(|c| c.1.target) {
            true => self.tags_of(prefix, |t| {
                fs::symlink_metadata(prefix.join(OsStr::from_bytes(t))).is_ok()
            }),
            false => None,
        };
        let nodes = trie
            .children
            .par_iter()
            .map(|(name, child)| -> Result<Option<Node>> {
                let path = prefix.join(OsStr::from_bytes(name));
                let pn = parent.and_then(|t| t.find(name));
                if child.target {
                    if tags.as_ref().is_some_and(|t| t.iter().any(|t| t != name)) {
                        return Ok(None);
                    }
                    let m = fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
                    return self.entry(&path, name.clone(), pn, m.dev());
                }
                let m = fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
                let mut n = self.node_from_meta(name.clone(), &path, &m);
                let pt = self.parent_subtree(&path, pn);
                let tree = self.virtual_dir(&path, child, pt.as_ref())?;
                self.finish_dir(&mut n, tree, pn)?;
                Ok(Some(n))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tree {
            nodes: nodes.into_iter().flatten().collect(),
        })
    }
}

#[derive(Default)]
pub(super) struct Trie {
    pub(super) target: bool,
    pub(super) children: Vec<(Vec<u8>, Trie)>,
}

pub(super) fn normalize(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io("resolve path", p, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

pub(super) fn build_trie(paths: &[PathBuf]) -> Trie {
    let mut root = Trie::default();
    for p in paths {
        let mut t = &mut root;
        for c in p.components() {
            if let Component::Normal(n) = c {
                let name = n.as_bytes().to_vec();
                let i = match t.children.iter().position(|(k, _)| *k == name) {
                    Some(i) => i,
                    None => {
                        t.children.push((name, Trie::default()));
                        t.children.len() - 1
                    }
                };
                t = &mut t.children[i].1;
            }
        }
        t.target = true;
        t.children.clear();
    }
    pub(super) fn sort(t: &mut Trie) {
        t.children.sort_by(|a, b| a.0.cmp(&b.0));
        t.children.iter_mut().for_each(|c| sort(&mut c.1));
    }
    sort(&mut root);
    root
}
