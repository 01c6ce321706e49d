//! Restore: snapshot → trees → index → pack reader → files and metadata on disk.
//!
//! The tree is walked once into a plan; directories are created first. Every path below the
//! target is reached from the target's descriptor one component at a time with `O_NOFOLLOW`
//! (see `Dirs`), and metadata is set through descriptors, so a symlink planted in the target
//! (or left there by an earlier restore) is replaced, never followed. File contents are then
//! planned by pack: every blob the selected files need is read once, by ranged reads of
//! neighbouring blobs in the same pack, run by run in parallel; each blob is opened and
//! verified (authentication, keyed id, length) and written with positional writes at every
//! offset of every file that needs it. A file whose blob cannot be read or opened is removed
//! once its last blob is accounted for and reported, so wrong data is never left behind as if
//! it were restored. Links and special files follow, and last the directories' own metadata,
//! deepest first, so their times are not disturbed. `--verify` reads every file back and
//! checks its whole-content digest.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType as FsType, Mode, OFlags, Timestamps, XattrFlags, CWD};
use rustix::io::Errno;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Snapshot};
use crate::id::{BlobId, Id, PackId};
use crate::index::{BlobLocation, Index};
use crate::pack::{open_blob_at, read_blob};
use crate::repository::Repository;
use crate::tree::{find_node, load_tree};

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only paths matching one of these (or below a match).
    pub includes: Vec<String>,
    /// Skip paths matching one of these (and everything below).
    pub excludes: Vec<String>,
    /// Leave all-zero chunks as holes.
    pub sparse: bool,
    /// Read every restored file back and check its digest.
    pub verify: bool,
    /// Restore ownership (default: when running as root).
    pub owner: Option<bool>,
}

#[derive(Debug, Default)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    pub verified_files: u64,
    /// Every path that could not be restored, with the reason.
    pub errors: Vec<String>,
}

/// Blobs of one pack read with one ranged read: neighbours whose gap is at most `RUN_GAP`
/// bytes, up to `RUN_BYTES` per read (unless one blob is larger), so a thread holds at most
/// one run and the blob being opened. (8 MiB runs: 2.19 s and 84 MiB peak restoring the 1 GB
/// corpus to tmpfs; 4 MiB: 1.82 s, 79 MiB; 2 MiB: 1.80 s, 73 MiB.)
const RUN_GAP: u64 = 256 << 10;
const RUN_BYTES: u64 = 2 << 20;
/// Files left open between writes (a large file whose blobs lie in several packs); beyond
/// this a file is closed after each write and reopened by the next.
const MAX_OPEN: usize = 256;

/// Where one blob goes: a file (its place in `write_files`' slots) and a byte offset.
struct Place {
    file: usize,
    offset: u64,
}

/// One ranged read of a pack and the blobs in it, in pack order.
struct Run {
    pack: PackId,
    start: u64,
    end: u64,
    blobs: Vec<(BlobId, BlobLocation)>,
}

/// Groups the wanted blobs by pack and cuts each pack's into runs (see `RUN_GAP`).
fn plan_runs(wanted: Vec<(BlobId, BlobLocation)>) -> Vec<Run> {
    let mut by_pack: HashMap<PackId, Vec<(BlobId, BlobLocation)>> = HashMap::new();
    for (id, loc) in wanted {
        by_pack.entry(loc.pack).or_default().push((id, loc));
    }
    let mut packs: Vec<_> = by_pack.into_iter().collect();
    packs.sort_by_key(|(p, _)| *p);
    let mut runs = Vec::new();
    for (pack, mut blobs) in packs {
        blobs.sort_by_key(|(_, l)| l.offset);
        let mut cur: Option<Run> = None;
        for (id, loc) in blobs {
            let (b, e) = (loc.offset as u64, loc.offset as u64 + loc.length as u64);
            if let Some(r) = cur.as_mut() {
                if b >= r.end && b - r.end <= RUN_GAP && e - r.start <= RUN_BYTES {
                    r.end = e;
                    r.blobs.push((id, loc));
                    continue;
                }
                runs.push(cur.take().expect("checked"));
            }
            cur = Some(Run {
                pack,
                start: b,
                end: e,
                blobs: vec![(id, loc)],
            });
        }
        runs.extend(cur);
    }
    runs
}

/// A regular file being restored.
struct Slot {
    item: usize,
    out: Mutex<Out>,
    /// Blob placements still to write; the one that takes it to zero finishes the file.
    remaining: AtomicUsize,
}

#[derive(Default)]
struct Out {
    file: Option<File>,
    created: bool,
    /// (device, inode) of the file while it is closed (see `MAX_OPEN`).
    inode: Option<(u64, u64)>,
    /// The first error; a failed file is removed once its last placement is accounted for.
    error: Option<String>,
}

/// Directories kept open at once (on top of `MAX_OPEN` files), well below the usual limit of
/// 1024 descriptors: a tree may have more directories than a process may open files.
const MAX_OPEN_DIRS: usize = 512;

/// Descriptors of the directories being restored, each opened from its parent's descriptor
/// with `O_NOFOLLOW` (the target's own from its path, the user's choice), so no path below
/// the target is ever resolved through a symlink: one planted by a local user, or left by an
/// earlier restore of another snapshot. At most `MAX_OPEN_DIRS` stay open; an evicted one is
/// opened again from its nearest open ancestor, one component at a time.
struct Dirs<'a> {
    root: Arc<OwnedFd>,
    items: &'a [Item],
    open: Mutex<DirCache>,
}

#[derive(Default)]
struct DirCache {
    /// Descriptor and last use of each open directory, by item.
    fds: HashMap<usize, (Arc<OwnedFd>, u64)>,
    clock: u64,
}

impl DirCache {
    fn get(&mut self, dir: usize) -> Option<Arc<OwnedFd>> {
        self.clock += 1;
        let clock = self.clock;
        self.fds.get_mut(&dir).map(|(fd, used)| {
            *used = clock;
            fd.clone()
        })
    }

    fn insert(&mut self, dir: usize, fd: Arc<OwnedFd>) {
        if self.fds.len() >= MAX_OPEN_DIRS {
            // The least recently used half goes at once: O(1) per insertion, amortized.
            let mut used: Vec<u64> = self.fds.values().map(|(_, u)| *u).collect();
            let mid = used.len() / 2;
            let cut = *used.select_nth_unstable(mid).1;
            self.fds.retain(|_, (_, u)| *u > cut);
        }
        self.clock += 1;
        self.fds.insert(dir, (fd, self.clock));
    }
}

impl<'a> Dirs<'a> {
    fn new(root: OwnedFd, items: &'a [Item]) -> Self {
        Dirs {
            root: Arc::new(root),
            items,
            open: Mutex::default(),
        }
    }

    fn insert(&self, dir: usize, fd: OwnedFd) {
        self.open.lock().unwrap().insert(dir, Arc::new(fd));
    }

    /// The descriptor of directory item `dir` (`None`: the target).
    fn get(&self, dir: Option<usize>) -> rustix::io::Result<Arc<OwnedFd>> {
        let mut missing = Vec::new();
        let mut base = None;
        {
            let mut cache = self.open.lock().unwrap();
            let mut cur = dir;
            while let Some(d) = cur {
                if let Some(fd) = cache.get(d) {
                    base = Some(fd);
                    break;
                }
                missing.push(d);
                cur = self.items[d].parent;
            }
        }
        let mut base = base.unwrap_or_else(|| self.root.clone());
        for &d in missing.iter().rev() {
            let fd = Arc::new(open_dir(&base, &self.items[d].node.name)?);
            self.open.lock().unwrap().insert(d, fd.clone());
            base = fd;
        }
        Ok(base)
    }

    /// The descriptor of the directory `it` is restored in.
    fn parent_of(&self, it: &Item) -> Result<Arc<OwnedFd>> {
        self.get(it.parent).map_err(|e| {
            let dir = it.dest.parent().unwrap_or(&it.dest);
            Error::io("open directory", dir, e.into())
        })
    }
}

fn open_dir(parent: &OwnedFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty())
}

/// Makes `name` in `parent` a directory and opens it. An existing directory is kept; a
/// symlink, file or special file there is removed, never followed. A new directory stays
/// private (0700) until its own metadata is set at the end, so no other local user can plant
/// anything in it meanwhile.
fn make_dir(parent: &OwnedFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::mkdirat(parent, name, Mode::RWXU) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    match open_dir(parent, name) {
        // O_DIRECTORY reports a symlink as ENOTDIR before O_NOFOLLOW's ELOOP.
        Err(Errno::NOTDIR | Errno::LOOP) => {
            rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
            rustix::fs::mkdirat(parent, name, Mode::RWXU)?;
            open_dir(parent, name)
        }
        r => r,
    }
}

/// Removes whatever stands at `name` in `dir` so that something else can be created there:
/// an empty directory too, but not a directory with entries (as restic does without
/// `--delete`: a restore does not delete a tree it did not write).
fn clear_entry(dir: &OwnedFd, name: &[u8]) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR),
        Err(e) => Err(e),
    }
}

/// Creates a file to restore into, replacing whatever else stands there (a symlink, a FIFO, a
/// file that may be a hard link to one outside the target), so content never goes through
/// anything planted in the target.
fn create_dest(dirs: &Dirs, it: &Item) -> Result<File> {
    let dir = dirs.parent_of(it)?;
    let name = it.node.name.as_slice();
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let mode = Mode::RUSR | Mode::WUSR;
    match rustix::fs::openat(&dir, name, flags, mode) {
        Err(Errno::EXIST) => {
            clear_entry(&dir, name).and_then(|()| rustix::fs::openat(&dir, name, flags, mode))
        }
        r => r,
    }
    .map(File::from)
    .map_err(|e| Error::io("create", &it.dest, e.into()))
}

/// Opens a file again that was closed after `MAX_OPEN`, keeping what was written. `inode` is
/// the (device, inode) it had: a file swapped in meanwhile is refused, not written and chowned.
fn reopen_dest(dirs: &Dirs, it: &Item, inode: Option<(u64, u64)>) -> Result<File> {
    let dir = dirs.parent_of(it)?;
    // O_NONBLOCK: a FIFO swapped in fails (ENXIO) instead of blocking.
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let io = |e: Errno| Error::io("open", &it.dest, e.into());
    let fd = rustix::fs::openat(&dir, it.node.name.as_slice(), flags, Mode::empty()).map_err(io)?;
    if inode.is_some() && inode != file_id(&fd) {
        let e = std::io::Error::other("replaced by another file while restoring");
        return Err(Error::io("open", &it.dest, e));
    }
    Ok(File::from(fd))
}

fn file_id(fd: impl AsFd) -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Removes a file whose restore failed.
fn remove_dest(dirs: &Dirs, it: &Item) {
    if let Ok(dir) = dirs.get(it.parent) {
        let _ = rustix::fs::unlinkat(&dir, it.node.name.as_slice(), AtFlags::empty());
    }
}

/// Writes the content of the regular files `files` (indexes into `dirs.items`): every blob they
/// need is read once, by pack in ranged reads, opened and verified, and written at each offset
/// that needs it. Returns the files restored and their bytes.
fn write_files(
    repo: &Repository,
    index: &Index,
    dirs: &Dirs,
    files: &[usize],
    opts: &RestoreOptions,
    owner: bool,
    fail: &(dyn Fn(&Item, &str, &dyn std::fmt::Display) + Sync),
) -> (u64, u64) {
    let items = dirs.items;
    let slots: Vec<Slot> = files
        .iter()
        .map(|&item| Slot {
            item,
            out: Mutex::new(Out::default()),
            remaining: AtomicUsize::new(0),
        })
        .collect();
    let mut places: HashMap<BlobId, (BlobLocation, Vec<Place>)> = HashMap::new();
    let mut empty = Vec::new();
    for (si, slot) in slots.iter().enumerate() {
        let node = &items[slot.item].node;
        let locs: std::result::Result<Vec<BlobLocation>, &BlobId> = node
            .content
            .iter()
            .map(|id| index.get(BlobType::Data, id).ok_or(id))
            .collect();
        let problem = match &locs {
            Err(id) => Some(Error::NotFound {
                what: BlobType::Data.blob_name(),
                id: id.to_hex(),
            }),
            Ok(locs) => {
                let total: u64 = locs.iter().map(|l| l.raw_len as u64).sum();
                (total != node.size).then(|| {
                    Error::corrupt(
                        "file",
                        &items[slot.item].snap_path,
                        format!("its blobs hold {total} bytes, the tree says {}", node.size),
                    )
                })
            }
        };
        if let Some(e) = problem {
            fail(&items[slot.item], "restore", &e);
            continue;
        }
        let locs = locs.expect("an error is reported above");
        if locs.is_empty() {
            empty.push(si);
            continue;
        }
        let mut offset = 0u64;
        for (id, loc) in node.content.iter().zip(locs) {
            places
                .entry(*id)
                .or_insert_with(|| (loc, Vec::new()))
                .1
                .push(Place { file: si, offset });
            offset += loc.raw_len as u64;
        }
        slot.remaining.store(node.content.len(), Relaxed);
    }
    let open_files = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);

    // Called with the slot's lock held once its last placement is written (or failed).
    let finish = |slot: &Slot, out: &mut Out| {
        let it = &items[slot.item];
        let file = out.file.take();
        if file.is_some() {
            open_files.fetch_sub(1, Relaxed);
        }
        let r = match out.error.take() {
            Some(e) => Err(e),
            None => (|| -> Result<()> {
                let f = match file {
                    Some(f) => f,
                    None => reopen_dest(dirs, it, out.inode)?,
                };
                // Covers trailing holes of a sparse file.
                f.set_len(it.node.size)
                    .map_err(|e| Error::io("set length", &it.dest, e))?;
                set_fd_meta(&it.node, f.as_fd(), &it.dest, owner)
            })()
            .map_err(|e| e.to_string()),
        };
        match r {
            Ok(()) => {
                done.fetch_add(1, Relaxed);
                bytes.fetch_add(it.node.size, Relaxed);
            }
            Err(e) => {
                if out.created {
                    remove_dest(dirs, it);
                }
                fail(it, "restore", &e);
            }
        }
    };
    // Writes `data` (or leaves a hole) at one place, or records `err` for its file.
    let put = |place: &Place, data: std::result::Result<(&[u8], bool), &str>| {
        let slot = &slots[place.file];
        let it = &items[slot.item];
        let mut out = slot.out.lock().unwrap();
        if out.error.is_none() {
            let r = match data {
                Err(e) => Err(e.to_string()),
                Ok((data, zero)) => (|| -> Result<()> {
                    if out.file.is_none() {
                        let f = if out.created {
                            reopen_dest(dirs, it, out.inode)?
                        } else {
                            create_dest(dirs, it)?
                        };
                        out.created = true;
                        out.file = Some(f);
                        open_files.fetch_add(1, Relaxed);
                    }
                    if !zero {
                        use std::os::unix::fs::FileExt;
                        let f = out.file.as_ref().expect("opened above");
                        f.write_all_at(data, place.offset)
                            .map_err(|e| Error::io("write", &it.dest, e))?;
                    }
                    Ok(())
                })()
                .map_err(|e| e.to_string()),
            };
            if let Err(e) = r {
                out.error = Some(e);
            }
        }
        if slot.remaining.fetch_sub(1, Relaxed) == 1 {
            finish(slot, &mut out);
        } else if out.file.is_some() && open_files.load(Relaxed) > MAX_OPEN {
            out.inode = out.file.take().as_ref().and_then(file_id);
            open_files.fetch_sub(1, Relaxed);
        }
    };

    empty.par_iter().for_each(|&si| {
        let slot = &slots[si];
        let it = &items[slot.item];
        let mut out = slot.out.lock().unwrap();
        match create_dest(dirs, it) {
            Ok(f) => {
                out.created = true;
                out.file = Some(f);
                open_files.fetch_add(1, Relaxed);
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        finish(slot, &mut out);
    });

    let runs = plan_runs(places.iter().map(|(id, (loc, _))| (*id, *loc)).collect());
    let work = || {
        runs.par_iter().for_each(|run| {
            let sealed = repo.backend().read_range(
                FileType::Pack,
                &run.pack.to_hex(),
                run.start,
                run.end - run.start,
            );
            for (id, loc) in &run.blobs {
                let at = (loc.offset as u64 - run.start) as usize;
                let raw = sealed.as_ref().map_err(|e| e.to_string()).and_then(|s| {
                    let sealed = &s[at..at + loc.length as usize];
                    open_blob_at(repo, BlobType::Data, id, loc, sealed).map_err(|e| e.to_string())
                });
                let targets = &places[id].1;
                match &raw {
                    Ok(raw) => {
                        let zero = opts.sparse && raw.iter().all(|&b| b == 0);
                        for p in targets {
                            put(p, Ok((raw, zero)));
                        }
                    }
                    Err(e) => {
                        for p in targets {
                            put(p, Err(e));
                        }
                    }
                }
            }
        })
    };
    // An object store answers each ranged read after a round trip: keep 2 × `connections`
    // reads in flight (8 by default) rather than one per core.
    let n = repo.backend().connections();
    let pool = (n > 0)
        .then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads((2 * n).max(rayon::current_num_threads()))
                .build()
                .ok()
        })
        .flatten();
    match pool {
        Some(p) => p.install(work),
        None => work(),
    }
    (done.into_inner(), bytes.into_inner())
}

struct Item {
    /// Path inside the snapshot, `/`-separated, for patterns and messages.
    snap_path: String,
    /// Where it goes, for messages: it is opened by `name` in its parent's descriptor.
    dest: PathBuf,
    /// The directory item it is restored in; `None`: the target itself.
    parent: Option<usize>,
    node: Node,
}

fn patterns(p: &[String]) -> Result<GlobSet> {
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
    includes: Option<GlobSet>,
    excludes: GlobSet,
    items: Vec<Item>,
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

/// Restores `subpath` of `snapshot` (all of it when empty) under `opts.target`. Paths keep
/// their place below the snapshot root (or below `subpath`), as restic does.
pub fn restore(
    repo: &Repository,
    index: &Index,
    snapshot: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
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
    fs::create_dir_all(&opts.target).map_err(|e| Error::io("create directory", &opts.target, e))?;
    // The target's own path may go through symlinks (the user chose it); nothing below does.
    let root = rustix::fs::openat(
        CWD,
        &opts.target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open directory", &opts.target, e.into()))?;
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
    let items = planner.items;
    let dirs = Dirs::new(root, &items);
    let owner = opts
        .owner
        .unwrap_or_else(|| nix::unistd::geteuid().is_root());
    let errors = Mutex::new(Vec::new());
    let fail = |it: &Item, what: &str, e: &dyn std::fmt::Display| {
        errors
            .lock()
            .unwrap()
            .push(format!("{}: {what}: {e}", it.snap_path));
    };
    let mut sum = RestoreSummary::default();

    // Directories, parents first.
    let mut made = vec![false; items.len()];
    for (i, it) in items.iter().enumerate() {
        if it.node.kind != NodeKind::Dir {
            continue;
        }
        let r = dirs.parent_of(it).and_then(|p| {
            make_dir(&p, &it.node.name)
                .map_err(|e| Error::io("create directory", &it.dest, e.into()))
        });
        match r {
            Ok(fd) => {
                dirs.insert(i, fd);
                made[i] = true;
                sum.dirs += 1;
            }
            Err(e) => fail(it, "restore", &e),
        }
    }

    // Hard links: the first path of an inode gets the content, the rest link to it.
    let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut link_to: Vec<(usize, usize)> = Vec::new();
    let mut files = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if it.node.kind == NodeKind::Dir {
            continue;
        }
        if it.node.links > 1 && it.node.inode != 0 {
            match first_of.get(&(it.node.device, it.node.inode)) {
                Some(&f) => {
                    link_to.push((i, f));
                    continue;
                }
                None => {
                    first_of.insert((it.node.device, it.node.inode), i);
                }
            }
        }
        files.push(i);
    }

    let (regular, special): (Vec<usize>, Vec<usize>) = files
        .into_iter()
        .partition(|&i| items[i].node.kind == NodeKind::File);
    let (nfiles, bytes) = write_files(repo, index, &dirs, &regular, opts, owner, &fail);
    sum.files += nfiles;
    sum.bytes += bytes;
    let others: u64 = special
        .par_iter()
        .map(|&i| {
            let it = &items[i];
            let r = dirs.parent_of(it).and_then(|dir| {
                create_special(&it.node, &dir, &it.dest)?;
                set_meta_at(&it.node, &dir, &it.dest, owner)
            });
            match r {
                Ok(()) => 1,
                Err(e) => {
                    fail(it, "restore", &e);
                    0
                }
            }
        })
        .sum();
    sum.others += others;

    for (i, f) in link_to {
        let (it, first) = (&items[i], &items[f]);
        match hard_link(&dirs, first, it) {
            Ok(()) => sum.files += 1,
            Err(e) => fail(it, &format!("hard link to {}", first.snap_path), &e),
        }
    }

    set_dir_meta(&dirs, &made, owner, &fail);
    if opts.verify {
        let failed: Vec<(usize, Error)> = items
            .par_iter()
            .enumerate()
            .filter(|(_, it)| it.node.kind == NodeKind::File)
            .filter_map(|(i, it)| verify_file(&dirs, it).err().map(|e| (i, e)))
            .collect();
        for (i, e) in &failed {
            fail(&items[*i], "verify", e);
        }
        sum.verified_files = items
            .iter()
            .filter(|i| i.node.kind == NodeKind::File)
            .count() as u64
            - failed.len() as u64;
    }
    sum.errors = errors.into_inner().unwrap();
    Ok(sum)
}

/// Links `it` to `first`, already restored, replacing whatever stands at `it`.
fn hard_link(dirs: &Dirs, first: &Item, it: &Item) -> Result<()> {
    let (from, to) = (dirs.parent_of(first)?, dirs.parent_of(it)?);
    let name = it.node.name.as_slice();
    clear_entry(&to, name)
        .and_then(|()| {
            // Flags 0: a symlink at `first` would be linked itself, not followed.
            rustix::fs::linkat(
                &from,
                first.node.name.as_slice(),
                &to,
                name,
                AtFlags::empty(),
            )
        })
        .map_err(|e| Error::io("hard link", &it.dest, e.into()))
}

/// Directory metadata last, deepest level first (a parent restored without search permission
/// would lock a non-root restorer out of its children), each level in parallel: setting a
/// directory's metadata does not change its parent's. Only directories `made` are touched.
fn set_dir_meta(
    dirs: &Dirs,
    made: &[bool],
    owner: bool,
    fail: &(dyn Fn(&Item, &str, &dyn std::fmt::Display) + Sync),
) {
    let mut todo: Vec<(usize, &Item)> = dirs
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| made[*i])
        .collect();
    let depth = |it: &Item| it.dest.components().count();
    todo.sort_by_key(|(_, it)| std::cmp::Reverse(depth(it)));
    for level in todo.chunk_by(|a, b| depth(a.1) == depth(b.1)) {
        level.par_iter().for_each(|&(i, it)| {
            let r = dirs
                .get(Some(i))
                .map_err(|e| Error::io("open directory", &it.dest, e.into()))
                .and_then(|fd| set_fd_meta(&it.node, fd.as_fd(), &it.dest, owner));
            if let Err(e) = r {
                fail(it, "set metadata", &e);
            }
        });
    }
}

/// Re-reads a restored file, opened by name in its directory's descriptor without following
/// a symlink, and checks its whole-content digest.
fn verify_file(dirs: &Dirs, it: &Item) -> Result<()> {
    let dir = dirs.parent_of(it)?;
    let (node, path, name) = (&it.node, &it.dest, it.node.name.as_slice());
    // O_NONBLOCK: a FIFO swapped in after the restore is read as empty instead of blocking.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    // O_NOATIME: reading back must not undo the atime just restored.
    let fd = match rustix::fs::openat(&dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::openat(&dir, name, flags, Mode::empty()),
        r => r,
    }
    .map_err(|e| Error::io("open", path, e.into()))?;
    let mut f = File::from(fd);
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    let got = Id(*h.finalize().as_bytes());
    if node.digest.is_some_and(|d| d != got) || size != node.size {
        return Err(Error::corrupt(
            "restored file",
            path.display(),
            "content differs from the snapshot's digest",
        ));
    }
    Ok(())
}

/// Creates a symlink or special file by name in `dir`, replacing whatever stands there.
fn create_special(node: &Node, dir: &OwnedFd, dest: &Path) -> Result<()> {
    let name = node.name.as_slice();
    clear_entry(dir, name).map_err(|e| Error::io("replace", dest, e.into()))?;
    let mode = Mode::from_raw_mode(node.mode & 0o7777);
    let rdev = match node.kind {
        NodeKind::Symlink => {
            return rustix::fs::symlinkat(node.link_target.as_slice(), dir, name)
                .map_err(|e| Error::io("create symlink", dest, e.into()))
        }
        NodeKind::CharDevice | NodeKind::BlockDevice => node.rdev,
        _ => 0,
    };
    rustix::fs::mknodat(dir, name, special_type(node.kind), mode, rdev as _)
        .map_err(|e| Error::io("create special file", dest, e.into()))
}

fn special_type(kind: NodeKind) -> FsType {
    match kind {
        NodeKind::Symlink => FsType::Symlink,
        NodeKind::Fifo => FsType::Fifo,
        NodeKind::Socket => FsType::Socket,
        NodeKind::CharDevice => FsType::CharacterDevice,
        NodeKind::BlockDevice => FsType::BlockDevice,
        NodeKind::File | NodeKind::Dir => unreachable!("not special"),
    }
}

fn timestamps(node: &Node) -> Timestamps {
    let ts = |ns: i64| rustix::fs::Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000),
    };
    Timestamps {
        last_access: ts(atime(node)),
        last_modification: ts(node.mtime_ns),
    }
}

/// A node backed up without `--with-atime` has atime 0 (not recorded); it is restored with
/// its mtime, as restic does.
fn atime(node: &Node) -> i64 {
    if node.atime_ns == 0 {
        node.mtime_ns
    } else {
        node.atime_ns
    }
}

/// Filesystems without xattrs, or namespaces a non-root user may not write.
fn xattr_skipped(e: Errno) -> bool {
    matches!(e, Errno::NOTSUP | Errno::PERM)
}

/// Sets a restored file's or directory's owner, xattrs, mode and times (in that order:
/// changing the owner clears setuid bits) on its descriptor.
fn set_fd_meta(node: &Node, fd: BorrowedFd<'_>, dest: &Path, owner: bool) -> Result<()> {
    let io = |op, e: Errno| Error::io(op, dest, e.into());
    if owner {
        let (u, g) = owner_ids(node);
        rustix::fs::fchown(fd, Some(u), Some(g)).map_err(|e| io("change owner", e))?;
    }
    for x in &node.xattrs {
        let r = rustix::fs::fsetxattr(fd, x.name.as_slice(), &x.value, XattrFlags::empty());
        match r {
            Err(e) if !xattr_skipped(e) => return Err(io("set xattr", e)),
            _ => {}
        }
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(node.mode & 0o7777))
        .map_err(|e| io("change mode", e))?;
    rustix::fs::futimens(fd, &timestamps(node)).map_err(|e| io("set times", e))
}

fn owner_ids(node: &Node) -> (rustix::fs::Uid, rustix::fs::Gid) {
    // Unchecked: a uid of -1 in a snapshot means "leave unchanged" to fchown, not a panic.
    (
        rustix::fs::Uid::from_raw_unchecked(node.uid),
        rustix::fs::Gid::from_raw_unchecked(node.gid),
    )
}

/// `set_fd_meta` for symlinks and special files, which are not opened for reading or writing
/// (opening a device or FIFO acts on it): on an `O_PATH` descriptor of the entry itself,
/// checked to be what was just created, so an entry swapped meanwhile (say for a hard link to
/// a file outside the target) is refused, not changed.
fn set_meta_at(node: &Node, dir: &OwnedFd, dest: &Path, owner: bool) -> Result<()> {
    let io = |op, e: Errno| Error::io(op, dest, e.into());
    let name = node.name.as_slice();
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| io("open", e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io("stat", e))?;
    if FsType::from_raw_mode(st.st_mode) != special_type(node.kind) || st.st_nlink != 1 {
        let e = std::io::Error::other("replaced by something else while restoring");
        return Err(Error::io("set metadata", dest, e));
    }
    let symlink = node.kind == NodeKind::Symlink;
    if owner {
        let (u, g) = owner_ids(node);
        rustix::fs::chownat(&fd, "", Some(u), Some(g), AtFlags::EMPTY_PATH)
            .map_err(|e| io("change owner", e))?;
    }
    // An O_PATH descriptor takes no fsetxattr or fchmod: /proc/self/fd/N reaches exactly its
    // inode. For a symlink that path would be followed, so its xattrs go by name (lsetxattr,
    // through the directory's /proc/self/fd entry: there is no lsetxattrat).
    let path = proc_fd_path(&fd);
    let link_path = || proc_fd_path(dir).join(OsStr::from_bytes(name));
    for x in &node.xattrs {
        let (xn, xv, none) = (x.name.as_slice(), &x.value, XattrFlags::empty());
        let r = if symlink {
            rustix::fs::lsetxattr(link_path(), xn, xv, none)
        } else {
            rustix::fs::setxattr(&path, xn, xv, none)
        };
        match r {
            Err(e) if !xattr_skipped(e) => return Err(io("set xattr", e)),
            _ => {}
        }
    }
    if !symlink {
        let mode = Mode::from_raw_mode(node.mode & 0o7777);
        rustix::fs::chmodat(CWD, &path, mode, AtFlags::empty())
            .map_err(|e| io("change mode", e))?;
    }
    let times = timestamps(node);
    match rustix::fs::utimensat(&fd, "", &times, AtFlags::EMPTY_PATH) {
        // Kernels before 5.8 take no AT_EMPTY_PATH here.
        Err(Errno::INVAL) => rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW),
        r => r,
    }
    .map_err(|e| io("set times", e))
}

fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Blobs `dump` reads and opens in parallel at a time: at most this many, and at most
/// `DUMP_WINDOW_BYTES` of plaintext unless a single blob is larger.
const DUMP_WINDOW: usize = 8;
const DUMP_WINDOW_BYTES: u64 = 8 << 20;

/// Splits a file's blob list into windows (see `DUMP_WINDOW`).
fn windows<'a>(index: &Index, content: &'a [BlobId]) -> Vec<&'a [BlobId]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, id) in content.iter().enumerate() {
        let len = index
            .get(BlobType::Data, id)
            .map_or(0, |l| l.raw_len as u64);
        if i > start && (i - start == DUMP_WINDOW || bytes + len > DUMP_WINDOW_BYTES) {
            out.push(&content[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < content.len() {
        out.push(&content[start..]);
    }
    out
}

/// Writes one file's content to `out` (for `dump`), verifying the digest at the end.
pub fn dump(repo: &Repository, index: &Index, node: &Node, out: &mut dyn Write) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(Error::Invalid(format!(
            "{} is a {}, not a file",
            node.name_lossy(),
            node.kind.name()
        )));
    }
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    // Blobs are read and opened a window at a time in parallel, then hashed and written in
    // order, so a large dump (`cista dump … | psql`) keeps every core busy in bounded memory.
    for window in windows(index, &node.content) {
        let blobs = window
            .par_iter()
            .map(|id| read_blob(repo, index, BlobType::Data, id))
            .collect::<Result<Vec<_>>>()?;
        for data in blobs {
            h.update(&data);
            out.write_all(&data)
                .map_err(|e| Error::io("write", "<stdout>", e))?;
            n += data.len() as u64;
        }
    }
    out.flush().map_err(|e| Error::io("write", "<stdout>", e))?;
    if node
        .digest
        .is_some_and(|d| d != Id(*h.finalize().as_bytes()))
    {
        return Err(Error::corrupt(
            "file",
            node.name_lossy(),
            "content does not match the digest recorded at backup",
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pack: u8, offset: u32, length: u32) -> BlobLocation {
        BlobLocation {
            pack: Id([pack; 32]),
            offset,
            length,
            raw_len: length,
        }
    }

    #[test]
    fn dir_cache_keeps_at_most_max_open_dirs_and_evicts_the_least_recently_used() {
        let dev_null = || Arc::new(OwnedFd::from(File::open("/dev/null").unwrap()));
        let mut c = DirCache::default();
        for d in 0..MAX_OPEN_DIRS {
            c.insert(d, dev_null());
        }
        // Used recently: survives the eviction that the next insertion makes.
        assert!(c.get(0).is_some());
        c.insert(MAX_OPEN_DIRS, dev_null());
        assert!(c.fds.len() <= MAX_OPEN_DIRS / 2 + 1, "{}", c.fds.len());
        assert!(c.get(0).is_some() && c.get(MAX_OPEN_DIRS).is_some());
        assert!(c.get(1).is_none());
        assert!(c.get(MAX_OPEN_DIRS - 1).is_some());
    }

    #[test]
    fn windows_bound_count_and_bytes() {
        use crate::format::{BlobEntry, IndexFile, IndexPack};
        let sizes: [u32; 13] = [
            1 << 20,
            1 << 20,
            6 << 20,
            8 << 20,
            100,
            100,
            100,
            100,
            100,
            100,
            100,
            100,
            9 << 20,
        ];
        let ids: Vec<BlobId> = (0..sizes.len()).map(|i| Id([i as u8; 32])).collect();
        let pack = IndexPack {
            id: Id([0xee; 32]),
            blobs: ids
                .iter()
                .zip(sizes)
                .map(|(id, s)| BlobEntry {
                    ty: BlobType::Data,
                    id: *id,
                    offset: 0,
                    length: s,
                    raw_len: s,
                })
                .collect(),
        };
        let files = [IndexFile {
            supersedes: vec![],
            packs: vec![pack],
        }];
        let index = Index::from_files(files.iter());
        let w = windows(&index, &ids);
        let lens: Vec<usize> = w.iter().map(|w| w.len()).collect();
        // 1+1+6 MiB fit; 8 MiB alone; eight small ones (the count limit); 9 MiB alone.
        assert_eq!(lens, vec![3, 1, 8, 1]);
        assert_eq!(w.concat(), ids);
        assert!(windows(&index, &[]).is_empty());
    }

    #[test]
    fn runs_group_by_pack_in_offset_order_and_respect_gap_and_size() {
        let u = (RUN_BYTES / 8) as u32;
        let g = RUN_GAP as u32;
        let wanted = vec![
            (Id([1; 32]), loc(1, 2 * u + g, 2 * u)),
            (Id([2; 32]), loc(1, 0, u)),
            // A gap of exactly RUN_GAP still joins the run.
            (Id([3; 32]), loc(1, u + g, u)),
            // This one would make the run longer than RUN_BYTES.
            (Id([4; 32]), loc(1, 4 * u + g, 4 * u)),
            (Id([5; 32]), loc(2, 100, 10)),
            // A gap of RUN_GAP + 1 starts a new run.
            (Id([6; 32]), loc(2, 110 + g + 1, 10)),
            // Larger than RUN_BYTES on its own.
            (Id([7; 32]), loc(3, 0, 9 * u)),
        ];
        let runs = plan_runs(wanted);
        let shape: Vec<(u8, u32, u32, Vec<u8>)> = runs
            .iter()
            .map(|r| {
                let ids = r.blobs.iter().map(|b| b.0 .0[0]).collect();
                (r.pack.0[0], r.start as u32, r.end as u32, ids)
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (1, 0, 4 * u + g, vec![2, 3, 1]),
                (1, 4 * u + g, 8 * u + g, vec![4]),
                (2, 100, 110, vec![5]),
                (2, 110 + g + 1, 120 + g + 1, vec![6]),
                (3, 0, 9 * u, vec![7]),
            ]
        );
        for r in &runs {
            assert!(r.end - r.start <= RUN_BYTES || r.blobs.len() == 1);
        }
    }
}
