//! The restore plan: the snapshot's tree walked once into items, with includes and excludes;
//! with `delete`, what the snapshot holds in each directory restored; and, before anything is
//! downloaded, what to do with each path that already exists in the target (the overwrite
//! policy), so files left as they are cost no reads from the repository.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::dirs::Dirs;
use super::{Item, Overwrite, RestoreOptions};
use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Snapshot};
use crate::id::Id;
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::{find_node, load_tree};

pub(super) struct Plan {
    /// Directories before their contents.
    pub(super) items: Vec<Item>,
    pub(super) select: Select,
    /// With `delete`: every directory restored (`dir`: its item, `None` for the target).
    pub(super) listings: Vec<Listing>,
}

/// What the snapshot holds in one restored directory: every name, selected or not, so that
/// `delete` removes only what the snapshot lacks.
pub(super) struct Listing {
    pub(super) dir: Option<usize>,
    pub(super) snap_dir: String,
    /// The directory itself was selected by an include (so is everything below it).
    pub(super) included: bool,
    pub(super) names: HashSet<Vec<u8>>,
}

/// The includes and excludes.
pub(super) struct Select {
    includes: Option<GlobSet>,
    excludes: GlobSet,
}

impl Select {
    /// Whether `snap_path` is selected, below a directory that is (`included`) or not.
    pub(super) fn selects(&self, snap_path: &str, included: bool) -> bool {
        !self.excludes.is_match(snap_path) && (included || self.included(snap_path))
    }

    fn included(&self, snap_path: &str) -> bool {
        self.includes.as_ref().is_none_or(|g| g.is_match(snap_path))
    }
}

/// `subpath` of `snapshot` with the options' includes and excludes applied.
pub(super) fn plan(
    repo: &Repository,
    index: &Index,
    snapshot: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<Plan> {
    let start = find_node(repo, index, &snapshot.tree, subpath)?;
    let mut planner = Planner {
        repo,
        index,
        select: Select {
            includes: if opts.includes.is_empty() {
                None
            } else {
                Some(patterns(&opts.includes)?)
            },
            excludes: patterns(&opts.excludes)?,
        },
        items: Vec::new(),
        listings: opts.delete.then(Vec::new),
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
            if !planner.walk(&tree, &base, &opts.target, None, false)? {
                // Nothing selected: restic deletes nothing in the target either.
                if let Some(l) = planner.listings.as_mut() {
                    l.clear();
                }
            }
        }
        _ => planner.items.push(Item {
            snap_path: base.clone(),
            dest: opts.target.join(OsStr::from_bytes(&start.name)),
            parent: None,
            node: start.clone(),
        }),
    }
    Ok(Plan {
        items: planner.items,
        select: planner.select,
        listings: planner.listings.unwrap_or_default(),
    })
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

struct Planner<'a> {
    repo: &'a Repository,
    index: &'a Index,
    select: Select,
    items: Vec<Item>,
    listings: Option<Vec<Listing>>,
}

impl Planner<'_> {
    /// Adds the children of a tree, restored in directory item `parent`; returns whether
    /// anything below was selected.
    fn walk(
        &mut self,
        tree_id: &Id,
        snap_dir: &str,
        dest: &Path,
        parent: Option<usize>,
        included: bool,
    ) -> Result<bool> {
        let tree = load_tree(self.repo, self.index, tree_id)?;
        let mut any = false;
        let names = self
            .listings
            .is_some()
            .then(|| tree.nodes.iter().map(|n| n.name.clone()).collect());
        for node in tree.nodes {
            let snap_path = format!("{}/{}", snap_dir, node.name_lossy());
            if self.select.excludes.is_match(&snap_path) {
                continue;
            }
            let inc = included || self.select.included(&snap_path);
            let dest = dest.join(OsStr::from_bytes(&node.name));
            if node.kind == NodeKind::Dir {
                let pos = self.items.len();
                let listed = self.listings.as_ref().map_or(0, Vec::len);
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
                    if let Some(l) = self.listings.as_mut() {
                        l.truncate(listed);
                    }
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
        if let (Some(l), Some(names)) = (self.listings.as_mut(), names) {
            l.push(Listing {
                dir: parent,
                snap_dir: snap_dir.to_string(),
                included,
                names,
            });
        }
        Ok(any)
    }
}

/// (device, inode) of an existing file.
pub(super) type FileId = (u64, u64);

/// What the restore does with a path that is not a directory, decided before anything is
/// downloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Nothing is there, or something that is not a regular file: created afresh.
    New,
    /// A regular file with other content is there: a new file is written beside it, with the
    /// blobs `keep` marks copied from it and the rest downloaded, and renamed over it once
    /// complete, so a failure leaves the old file as it was.
    Update { keep: Vec<bool>, old: FileId },
    /// A regular file with the snapshot's content is there: only its metadata is set.
    Unchanged { old: FileId },
    /// Left as it is (`Overwrite::Never`, `Overwrite::IfNewer`).
    Skip,
}

/// The decision for each of `items` (indexes into `dirs.items`; `dirs` is `None` when the
/// target does not exist yet), made in parallel. With `content` (regular files restored with
/// their content, not hard links to another) an existing regular file is read and compared;
/// otherwise only the policy decides.
pub(super) fn decide(
    repo: &Repository,
    index: &Index,
    dirs: Option<&Dirs>,
    items: &[usize],
    how: Overwrite,
    content: bool,
) -> Vec<Decision> {
    let Some(dirs) = dirs else {
        return vec![Decision::New; items.len()];
    };
    items
        .par_iter()
        .map_init(Vec::new, |buf, &i| {
            let it = &dirs.items[i];
            let Ok(dir) = dirs.parent_of(it) else {
                // Its directory is not there (yet), or is something else to be replaced.
                return Decision::New;
            };
            let name = it.node.name.as_slice();
            match rustix::fs::statat(&*dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Err(_) => Decision::New,
                Ok(st) if !wanted(how, &it.node, &st) => Decision::Skip,
                Ok(st) if content && is_regular(&st) => {
                    compare(repo, index, &dir, it, how, &st, buf)
                }
                Ok(_) => Decision::New,
            }
        })
        .collect()
}

fn is_regular(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
}

fn mtime_ns(st: &Stat) -> i64 {
    st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64
}

/// Whether the policy lets an existing entry be replaced (as restic, by its `lstat`).
fn wanted(how: Overwrite, node: &Node, st: &Stat) -> bool {
    match how {
        Overwrite::Always | Overwrite::IfChanged => true,
        Overwrite::IfNewer => node.mtime_ns > mtime_ns(st),
        Overwrite::Never => false,
    }
}

/// Compares an existing regular file with the node's blobs. A file with other links is never
/// `Unchanged`: setting its metadata would change the other names' too (one may be outside
/// the target), so it is replaced, its matching blobs copied.
fn compare(
    repo: &Repository,
    index: &Index,
    dir: &std::os::fd::OwnedFd,
    it: &Item,
    how: Overwrite,
    st: &Stat,
    buf: &mut Vec<u8>,
) -> Decision {
    let node = &it.node;
    let old = (st.st_dev, st.st_ino);
    let alone = st.st_nlink == 1;
    let same_size = st.st_size as u64 == node.size;
    if how == Overwrite::IfChanged && alone && same_size && mtime_ns(st) == node.mtime_ns {
        return Decision::Unchanged { old };
    }
    let keep = match open_existing(dir, it, old) {
        Ok(f) => matching_blobs(repo, index, &f, node, buf),
        // Unreadable: replaced whole.
        Err(_) => vec![false; node.content.len()],
    };
    if alone && same_size && keep.iter().all(|k| *k) {
        Decision::Unchanged { old }
    } else {
        Decision::Update { keep, old }
    }
}

/// Opens an existing regular file by name for reading, without following a symlink or
/// blocking on a FIFO, and only if it is still the file `old`.
pub(super) fn open_existing(dir: &std::os::fd::OwnedFd, it: &Item, old: FileId) -> Result<File> {
    let name = it.node.name.as_slice();
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    // O_NOATIME: comparing must not change what the next backup of the target sees.
    let fd = match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        r => r,
    };
    let io = |e: std::io::Error| Error::io("open", &it.dest, e);
    let fd = fd.map_err(|e| io(e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
    if !is_regular(&st) || (st.st_dev, st.st_ino) != old {
        return Err(io(std::io::Error::other("replaced while restoring")));
    }
    Ok(File::from(fd))
}

/// Which of the node's blobs the file already holds at their offsets (keyed ids compared).
fn matching_blobs(
    repo: &Repository,
    index: &Index,
    f: &File,
    node: &Node,
    buf: &mut Vec<u8>,
) -> Vec<bool> {
    let mut keep = vec![false; node.content.len()];
    let mut offset = 0u64;
    for (i, id) in node.content.iter().enumerate() {
        // A blob the index lacks fails the file later; a short file matches no further.
        let Some(loc) = index.get(BlobType::Data, id) else {
            break;
        };
        buf.resize(loc.raw_len as usize, 0);
        if f.read_exact_at(buf, offset).is_err() {
            break;
        }
        keep[i] = repo.keys().blob_id(buf) == *id;
        offset += loc.raw_len as u64;
    }
    keep
}
