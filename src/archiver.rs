//! Backup: source walk → chunker → dedup → packer → backend, building trees bottom-up.
//!
//! Directories are walked depth-first; the entries of a directory are processed in parallel on
//! rayon's pool, and so are the chunks of one file, so both cores stay busy on one large file
//! and on many small ones. A file is read in segments of at most two maximum chunks plus the
//! carried-over tail, so memory stays bounded whatever the file size. Files are read with
//! `read`, not mapped: a mapped file that another process truncates kills the reader with
//! SIGBUS, and nightly backups of live log and dump directories meet that.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{self, BlobType, Node, NodeKind, Snapshot, Summary, Tree, Xattr};
use crate::id::{BlobId, Id, SnapshotId, TreeId};
use crate::index::Index;
use crate::lock::LockGuard;
use crate::pack::{BlobSaver, INDEX_EVERY_PACKS};
use crate::repository::{format_time, hostname, username, Repository, SnapshotFilter};
use crate::tree::load_tree;

/// What to back up.
pub enum Source {
    /// Files and directories on this host.
    Paths(Vec<PathBuf>),
    /// One stream, stored as a file named `name` at the snapshot root.
    Reader {
        name: String,
        reader: Box<dyn Read + Send>,
    },
    /// The standard output of a command, stored as a file named `name`. A non-zero exit of the
    /// command fails the backup and no snapshot is saved.
    Command { name: String, argv: Vec<String> },
}

/// Backup settings.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub tags: Vec<String>,
    pub host: Option<String>,
    /// Glob patterns; a pattern without `/` matches any file name, one with `/` a whole path.
    pub excludes: Vec<String>,
    pub exclude_files: Vec<PathBuf>,
    pub one_file_system: bool,
    /// Snapshot time (RFC 3339); default now.
    pub time: Option<String>,
    /// Parent snapshot (id or prefix); default the latest with the same host and paths.
    pub parent: Option<String>,
    /// Read every file even when the parent says it is unchanged.
    pub force: bool,
    pub ignore_inode: bool,
    pub ignore_ctime: bool,
    /// Record access times. Off by default, as in restic 0.17: reading the source between two
    /// backups would otherwise change nearly every tree of the next one.
    pub with_atime: bool,
    /// Don't write anything; report what would be added.
    pub dry_run: bool,
}

/// What a backup produced.
#[derive(Debug)]
pub struct BackupResult {
    pub snapshot_id: Option<SnapshotId>,
    pub snapshot: Snapshot,
    pub summary: Summary,
    /// Source files that could not be read, each with the reason.
    pub warnings: Vec<String>,
    /// Damage found in the repository and worked around (the snapshot is complete): packs
    /// missing or short, parent trees that could not be loaded.
    pub notices: Vec<String>,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
}

struct Archiver<'a> {
    repo: &'a Repository,
    index: &'a Index,
    seen: Mutex<HashSet<(BlobType, BlobId)>>,
    saver: BlobSaver<'a>,
    c: Counters,
    warnings: Mutex<Vec<String>>,
    notices: Mutex<Vec<String>>,
    /// Parent trees that failed to load: stored again even though the index names them.
    distrusted: Mutex<HashSet<TreeId>>,
    excludes: Excludes,
    opts: &'a BackupOptions,
    names: Mutex<(HashMap<u32, String>, HashMap<u32, String>)>,
    dry_run: bool,
    /// Files being read in more than one piece right now (see `store_stream`).
    big_streams: AtomicU64,
}

/// Compiled exclude patterns.
struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Excludes {
    fn new(patterns: &[String], files: &[PathBuf]) -> Result<Excludes> {
        let mut all: Vec<String> = patterns.to_vec();
        for f in files {
            let text = fs::read_to_string(f).map_err(|e| Error::io("read exclude file", f, e))?;
            all.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for p in all {
            let p = p.trim_end_matches('/');
            let glob = |s: &str| {
                GlobBuilder::new(s)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| Error::Invalid(format!("exclude pattern {p:?}: {e}")))
            };
            if p.contains('/') {
                let full = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("**/{p}")
                };
                paths.add(glob(&full)?);
            } else {
                names.add(glob(p)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Invalid(format!("exclude patterns: {e}")))
        };
        Ok(Excludes {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.names.is_match(Path::new(OsStr::from_bytes(name))) || self.paths.is_match(path)
    }
}

fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn kind_of(m: &Metadata) -> NodeKind {
    let t = m.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_socket() {
        NodeKind::Socket
    } else if t.is_char_device() {
        NodeKind::CharDevice
    } else if t.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::File
    }
}

/// Opens a regular file for reading without following a symlink swapped in after `lstat`,
/// without blocking on a FIFO swapped in, and without updating its atime where allowed.
fn open_source(path: &Path) -> std::io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(base | libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::OpenOptions::new()
            .read(true)
            .custom_flags(base)
            .open(path),
        r => r,
    }?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    Ok(f)
}

/// Lists a directory's entry names, opened with `O_NOATIME` where allowed so that a backup
/// does not change the directory's atime (and with it the next backup's tree). A failure part
/// way returns the names read so far with the error.
fn list_dir(path: &Path) -> std::io::Result<(Vec<Vec<u8>>, Option<std::io::Error>)> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let base = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let mut dir = match nix::dir::Dir::open(path, base | OFlag::O_NOATIME, Mode::empty()) {
        Err(nix::errno::Errno::EPERM) => nix::dir::Dir::open(path, base, Mode::empty()),
        r => r,
    }
    .map_err(std::io::Error::from)?;
    let mut names = Vec::new();
    for e in dir.iter() {
        match e {
            Ok(e) => {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(n.to_vec());
                }
            }
            Err(e) => return Ok((names, Some(e.into()))),
        }
    }
    Ok((names, None))
}

/// Reads until `buf` holds `want` bytes or the reader ends; returns true at end of input.
/// `read_to_end` grows the buffer without zero-filling it first: zeroing a segment-sized buffer
/// per read made small-file backups spend most of their time in memset.
fn fill(r: &mut (dyn Read + Send), buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    while buf.len() < want {
        let need = (want - buf.len()) as u64;
        match r.take(need).read_to_end(buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// A failure while reading the source (a warning) or while writing the repository (fatal).
enum FileErr {
    Source(std::io::Error),
    Fatal(Error),
}

impl From<Error> for FileErr {
    fn from(e: Error) -> Self {
        FileErr::Fatal(e)
    }
}

/// The content of one stored file.
struct Content {
    blobs: Vec<BlobId>,
    digest: Id,
    size: u64,
}

impl<'a> Archiver<'a> {
    fn new(
        repo: &'a Repository,
        index: &'a Index,
        opts: &'a BackupOptions,
    ) -> Result<Archiver<'a>> {
        Ok(Archiver {
            repo,
            index,
            seen: Mutex::new(HashSet::new()),
            saver: BlobSaver::new(repo, Some(INDEX_EVERY_PACKS)),
            c: Counters::default(),
            warnings: Mutex::new(Vec::new()),
            notices: Mutex::new(Vec::new()),
            distrusted: Mutex::new(HashSet::new()),
            excludes: Excludes::new(&opts.excludes, &opts.exclude_files)?,
            opts,
            names: Mutex::new((HashMap::new(), HashMap::new())),
            dry_run: opts.dry_run,
            big_streams: AtomicU64::new(0),
        })
    }

    /// Stores a blob unless the index or this run already has it.
    fn add_blob(&self, ty: BlobType, data: &[u8]) -> Result<BlobId> {
        let id = self.repo.keys().blob_id(data);
        let indexed = self.index.contains(ty, &id)
            && !(ty == BlobType::Tree && self.distrusted.lock().unwrap().contains(&id));
        if indexed || !self.seen.lock().unwrap().insert((ty, id)) {
            return Ok(id);
        }
        let sealed = format::seal_blob(
            self.repo.keys(),
            ty,
            &id,
            data,
            Some(self.repo.config().blob_level(data.len())),
        );
        match ty {
            BlobType::Data => &self.c.data_blobs,
            BlobType::Tree => &self.c.tree_blobs,
        }
        .fetch_add(1, Relaxed);
        self.c.data_added.fetch_add(data.len() as u64, Relaxed);
        self.c
            .data_added_packed
            .fetch_add(sealed.len() as u64, Relaxed);
        if self.dry_run {
            return Ok(id);
        }
        self.saver.add(ty, id, &sealed, data.len() as u32)?;
        Ok(id)
    }

    /// Chunks and stores everything `r` yields.
    /// Chunks and stores everything `r` yields. The next segment is read while the current one
    /// is chunked, hashed, compressed and sealed, so a pipe (`pg_dump | cista backup --stdin`)
    /// or a large file never waits on its own reads.
    fn store_stream(&self, r: &mut (dyn Read + Send), size_hint: u64) -> Result<Content, FileErr> {
        let chunker = self.repo.chunker();
        let max = chunker.params().max as usize;
        // `cur` holds the uncut tail of the previous read (at most one maximum chunk) plus one
        // read; `next` is filled while `cur` is chunked, hashed, compressed and sealed. The
        // first large file being read gets reads of a maximum chunk, so a lone stream (a
        // pg_dump) keeps both cores busy; others read a quarter of that, which holds memory
        // to 24 MiB for the first large file and 12 MiB for each other one.
        let big = size_hint > max as u64;
        let first_big = big && self.big_streams.fetch_add(1, Relaxed) == 0;
        let read = if !big || first_big { max } else { max / 4 };
        let r = self.stream_pieces(r, size_hint, read);
        if big {
            self.big_streams.fetch_sub(1, Relaxed);
        }
        r
    }

    /// The body of `store_stream`, reading `read` bytes at a time.
    fn stream_pieces(
        &self,
        r: &mut (dyn Read + Send),
        size_hint: u64,
        read: usize,
    ) -> Result<Content, FileErr> {
        let chunker = self.repo.chunker();
        let max = chunker.params().max as usize;
        let mut cur: Vec<u8> = Vec::with_capacity((size_hint as usize).min(read + max) + 1);
        let mut next: Vec<u8> = Vec::new();
        let mut blobs = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut eof = fill(r, &mut cur, read + max).map_err(FileErr::Source)?;
        loop {
            let (ranges, used) = chunker.cut(&cur, eof);
            let data = &cur;
            let ((ids, _), got) = rayon::join(
                || {
                    rayon::join(
                        || {
                            ranges
                                .par_iter()
                                .map(|rg| self.add_blob(BlobType::Data, &data[rg.clone()]))
                                .collect::<Result<Vec<_>>>()
                        },
                        || hasher.update(&data[..used]),
                    )
                },
                || {
                    if eof {
                        Ok(true)
                    } else {
                        next.clear();
                        next.reserve_exact(read);
                        fill(r, &mut next, read)
                    }
                },
            );
            blobs.extend(ids?);
            size += used as u64;
            if eof {
                break;
            }
            eof = got.map_err(FileErr::Source)?;
            cur.drain(..used);
            cur.reserve_exact(next.len());
            cur.extend_from_slice(&next);
        }
        self.c.bytes.fetch_add(size, Relaxed);
        Ok(Content {
            blobs,
            digest: Id(*hasher.finalize().as_bytes()),
            size,
        })
    }

    fn warn(&self, path: &Path, what: &str, e: impl std::fmt::Display) {
        self.warnings
            .lock()
            .unwrap()
            .push(format!("{}: {what}: {e}", path.display()));
    }

    fn notice(&self, msg: String) {
        self.notices.lock().unwrap().push(msg);
    }

    /// The parent's tree for the directory at `path`. One that cannot be loaded is named,
    /// the directory is scanned afresh, and its id is not trusted for deduplication: were the
    /// fresh tree the same, the new snapshot would otherwise point at the damaged copy.
    fn load_parent_tree(&self, path: &Path, id: &TreeId) -> Option<Tree> {
        match load_tree(self.repo, self.index, id) {
            Ok(t) => Some(t),
            Err(e) => {
                self.distrusted.lock().unwrap().insert(*id);
                self.notice(format!(
                    "{}: parent snapshot's tree {id} could not be loaded ({e}); scanned afresh",
                    path.display()
                ));
                None
            }
        }
    }

    fn user_name(&self, uid: u32) -> String {
        let mut g = self.names.lock().unwrap();
        g.0.entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    fn group_name(&self, gid: u32) -> String {
        let mut g = self.names.lock().unwrap();
        g.1.entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    fn node_from_meta(&self, name: Vec<u8>, path: &Path, m: &Metadata) -> Node {
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
    fn unchanged(&self, n: &Node, p: &Node) -> bool {
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
    fn entry(
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
        let mut n = self.node_from_meta(name, path, &m);
        match n.kind {
            NodeKind::File => {
                self.c.files.fetch_add(1, Relaxed);
                if let Some(p) = parent.filter(|p| self.unchanged(&n, p)) {
                    n.content = p.content.clone();
                    n.digest = p.digest;
                    self.c.files_unmodified.fetch_add(1, Relaxed);
                    self.c.bytes.fetch_add(n.size, Relaxed);
                    return Ok(Some(n));
                }
                let stored = open_source(path)
                    .map_err(FileErr::Source)
                    .and_then(|mut f| self.store_stream(&mut f, n.size));
                match stored {
                    Ok(c) => {
                        // A file that grew or shrank while read is stored as read.
                        n.size = c.size;
                        n.content = c.blobs;
                        n.digest = Some(c.digest);
                    }
                    Err(FileErr::Source(e)) => {
                        self.warn(path, "read", e);
                        return Ok(None);
                    }
                    Err(FileErr::Fatal(e)) => return Err(e),
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

    fn parent_subtree(&self, path: &Path, parent: Option<&Node>) -> Option<Tree> {
        let p = parent?;
        let sub = p.subtree.filter(|_| p.kind == NodeKind::Dir)?;
        self.load_parent_tree(path, &sub)
    }

    fn finish_dir(&self, n: &mut Node, mut tree: Tree, parent: Option<&Node>) -> Result<TreeId> {
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
    fn dir(&self, path: &Path, parent: Option<&Tree>, dev: u64) -> Result<Tree> {
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
    fn virtual_dir(&self, prefix: &Path, trie: &Trie, parent: Option<&Tree>) -> Result<Tree> {
        let nodes = trie
            .children
            .par_iter()
            .map(|(name, child)| -> Result<Option<Node>> {
                let path = prefix.join(OsStr::from_bytes(name));
                let pn = parent.and_then(|t| t.find(name));
                if child.target {
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
struct Trie {
    target: bool,
    children: Vec<(Vec<u8>, Trie)>,
}

fn normalize(p: &Path) -> Result<PathBuf> {
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

fn build_trie(paths: &[PathBuf]) -> Trie {
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
    fn sort(t: &mut Trie) {
        t.children.sort_by(|a, b| a.0.cmp(&b.0));
        t.children.iter_mut().for_each(|c| sort(&mut c.1));
    }
    sort(&mut root);
    root
}

/// Runs a backup and saves its snapshot. The caller holds a shared lock (`lock`), which is
/// checked before the snapshot is written.
///
/// Should a prune that took the lock for stale delete blobs this backup deduplicated against,
/// a backup of paths runs once more against the index as it is now, storing them again; any
/// other backup fails without a snapshot.
pub fn backup(
    repo: &Repository,
    index: &Index,
    source: Source,
    opts: &BackupOptions,
    lock: Option<&LockGuard>,
) -> Result<BackupResult> {
    let again = match &source {
        Source::Paths(p) => Some(p.clone()),
        _ => None,
    };
    let gone = match run_backup(repo, index, source, opts, lock)? {
        Attempt::Saved(r) => return Ok(*r),
        Attempt::Gone(id) => id,
    };
    let Some(paths) = again else {
        return Err(gone_error(&gone));
    };
    let fresh = Index::load(repo)?;
    match run_backup(repo, &fresh, Source::Paths(paths), opts, lock)? {
        Attempt::Saved(r) => {
            let mut r = *r;
            r.notices.insert(
                0,
                format!(
                    "blob {gone} and maybe others this backup reused were deleted while it ran \
                     (a prune took its lock for stale); the backup ran again and stored them anew"
                ),
            );
            Ok(r)
        }
        Attempt::Gone(id) => Err(gone_error(&id)),
    }
}

fn gone_error(id: &BlobId) -> Error {
    Error::NotFound {
        what: "blob this backup reused (deleted while it ran, by a prune that took its lock \
               for stale; no snapshot saved, run the backup again)",
        id: id.to_hex(),
    }
}

enum Attempt {
    Saved(Box<BackupResult>),
    /// Not saved: this blob, which the new snapshot needs, is no longer stored.
    Gone(BlobId),
}

/// The index with the blobs of missing or short packs forgotten (one listing of data/), so
/// that they are stored again; each such pack is named.
fn reconcile<'i>(repo: &Repository, index: &'i Index) -> Result<(Cow<'i, Index>, Vec<String>)> {
    let bad = index.damaged_packs(&repo.pack_sizes()?);
    if bad.is_empty() {
        return Ok((Cow::Borrowed(index), Vec::new()));
    }
    let notes = bad
        .iter()
        .map(|d| format!("{d}: its blobs are stored again; run `cista check`"))
        .collect();
    let mut fixed = index.clone();
    fixed.rank_packs(&bad, true);
    Ok((Cow::Owned(fixed), notes))
}

fn run_backup(
    repo: &Repository,
    index: &Index,
    source: Source,
    opts: &BackupOptions,
    lock: Option<&LockGuard>,
) -> Result<Attempt> {
    let start = jiff::Zoned::now();
    let t0 = Instant::now();
    let host = opts.host.clone().unwrap_or_else(hostname);
    let (index, pack_notes) = reconcile(repo, index)?;
    let index = &*index;
    let a = Archiver::new(repo, index, opts)?;
    a.notices.lock().unwrap().extend(pack_notes);

    let (root, paths, parent_id) = match source {
        Source::Paths(paths) => {
            if paths.is_empty() {
                return Err(Error::Invalid("nothing to back up: no paths given".into()));
            }
            let mut abs = paths
                .iter()
                .map(|p| normalize(p))
                .collect::<Result<Vec<_>>>()?;
            abs.sort();
            abs.dedup();
            for p in &abs {
                fs::symlink_metadata(p).map_err(|e| Error::io("stat", p, e))?;
            }
            let shown: Vec<String> = abs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let parent = find_parent(repo, opts, &host, &shown)?;
            let parent_tree = parent
                .as_ref()
                .and_then(|(_, s)| a.load_parent_tree(Path::new("/"), &s.tree));
            let trie = build_trie(&abs);
            let tree = if abs.iter().any(|p| p.as_os_str() == "/") {
                let m = fs::metadata("/").map_err(|e| Error::io("stat", "/", e))?;
                a.dir(Path::new("/"), parent_tree.as_ref(), m.dev())?
            } else {
                a.virtual_dir(Path::new("/"), &trie, parent_tree.as_ref())?
            };
            (tree, shown, parent.map(|p| p.0))
        }
        Source::Reader { name, mut reader } => {
            let n = stream_node(&a, &name, &mut *reader)?;
            (Tree { nodes: vec![n] }, vec![format!("/{name}")], None)
        }
        Source::Command { name, argv } => {
            let (prog, args) = argv.split_first().ok_or_else(|| {
                Error::Invalid("no command given for --stdin-from-command".into())
            })?;
            let mut child = std::process::Command::new(prog)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| Error::Command(format!("cannot start {prog:?}: {e}")))?;
            let mut out = child.stdout.take().expect("piped stdout");
            let n = stream_node(&a, &name, &mut out);
            drop(out);
            let status = child
                .wait()
                .map_err(|e| Error::Command(format!("waiting for {prog:?}: {e}")))?;
            let n = n?;
            if !status.success() {
                return Err(Error::Command(format!(
                    "command {prog:?} failed ({status}); no snapshot saved"
                )));
            }
            (Tree { nodes: vec![n] }, vec![format!("/{name}")], None)
        }
    };

    let mut root = root;
    let tree_id = a.add_blob(BlobType::Tree, &root.encode())?;
    if !opts.dry_run {
        a.saver.flush()?;
    }
    let end = jiff::Zoned::now();
    let c = &a.c;
    let summary = Summary {
        files_new: c.files_new.load(Relaxed),
        files_changed: c.files_changed.load(Relaxed),
        files_unmodified: c.files_unmodified.load(Relaxed),
        dirs_new: c.dirs_new.load(Relaxed),
        dirs_changed: c.dirs_changed.load(Relaxed),
        dirs_unmodified: c.dirs_unmodified.load(Relaxed),
        data_blobs: c.data_blobs.load(Relaxed),
        tree_blobs: c.tree_blobs.load(Relaxed),
        data_added: c.data_added.load(Relaxed),
        data_added_packed: c.data_added_packed.load(Relaxed),
        total_files_processed: c.files.load(Relaxed),
        total_bytes_processed: c.bytes.load(Relaxed),
        backup_start: format_time(start.clone()),
        backup_end: format_time(end),
        duration_secs: t0.elapsed().as_secs_f64(),
    };
    let time = match &opts.time {
        Some(t) => parse_time(t)?,
        None => format_time(start),
    };
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let mut tags = opts.tags.clone();
    tags.sort();
    tags.dedup();
    let snapshot = Snapshot {
        time,
        tree: tree_id,
        paths,
        hostname: host,
        username: username(),
        uid,
        gid,
        tags,
        parent: parent_id,
        program_version: format!("cista {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary.clone()),
        original: None,
    };
    let snapshot_id = if opts.dry_run {
        None
    } else {
        let ours = a.saver.index_files();
        if let Some(id) = first_gone(repo, index, &ours, &tree_id)? {
            return Ok(Attempt::Gone(id));
        }
        if let Some(l) = lock {
            l.check()?;
        }
        Some(repo.save_snapshot(&snapshot)?)
    };
    let warnings = std::mem::take(&mut *a.warnings.lock().unwrap());
    let notices = std::mem::take(&mut *a.notices.lock().unwrap());
    Ok(Attempt::Saved(Box::new(BackupResult {
        snapshot_id,
        snapshot,
        summary,
        warnings,
        notices,
    })))
}

/// Before the snapshot is written: a blob the new tree `root` needs that is no longer stored.
///
/// Prune deletes packs only after it has stored an index file superseding the ones it read,
/// so while every index file this backup loaded is still there and no newer one supersedes
/// any, nothing it deduplicated against is gone (one listing of index/). Otherwise the new
/// tree is walked against the index as it is now and one listing of data/.
fn first_gone(
    repo: &Repository,
    loaded: &Index,
    ours: &[Id],
    root: &TreeId,
) -> Result<Option<BlobId>> {
    let now: HashSet<Id> = repo.list_ids(FileType::Index)?.into_iter().collect();
    let old: HashSet<Id> = loaded.index_files().iter().copied().collect();
    let mut pruned = !old.iter().all(|f| now.contains(f));
    if !pruned {
        let foreign: Vec<Id> = now
            .iter()
            .filter(|f| !old.contains(f) && !ours.contains(f))
            .filter(|f| !loaded.damaged_files().contains(f))
            .copied()
            .collect();
        let got = foreign
            .par_iter()
            .map(|f| (*f, crate::index::load_index_file(repo, f)))
            .collect();
        // A file that fails verification was not written by a prune (nor by anyone with the
        // key): it supersedes nothing.
        let files = crate::repository::Loaded::sort_out(got)?;
        pruned = files
            .ok
            .iter()
            .any(|(_, f)| !f.supersedes.is_empty() || (old.is_empty() && !f.packs.is_empty()));
    }
    if !pruned {
        return Ok(None);
    }
    let mut fresh = Index::load(repo)?;
    let bad = fresh.damaged_packs(&repo.pack_sizes()?);
    fresh.rank_packs(&bad, true);
    first_missing(repo, &fresh, root)
}

/// The first blob below tree `root` that `index` lacks, walking each tree once.
fn first_missing(repo: &Repository, index: &Index, root: &TreeId) -> Result<Option<BlobId>> {
    let mut seen: HashSet<TreeId> = HashSet::from([*root]);
    let mut level = vec![*root];
    while !level.is_empty() {
        if let Some(t) = level.iter().find(|t| !index.contains(BlobType::Tree, t)) {
            return Ok(Some(*t));
        }
        let trees = level
            .par_iter()
            .map(|t| load_tree(repo, index, t))
            .collect::<Result<Vec<_>>>()?;
        let mut next = Vec::new();
        for n in trees.iter().flat_map(|t| t.nodes.iter()) {
            if let Some(b) = n
                .content
                .iter()
                .find(|b| !index.contains(BlobType::Data, b))
            {
                return Ok(Some(*b));
            }
            next.extend(n.subtree.filter(|s| seen.insert(*s)));
        }
        level = next;
    }
    Ok(None)
}

fn stream_node(a: &Archiver, name: &str, r: &mut (dyn Read + Send)) -> Result<Node> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Invalid(format!(
            "stdin file name {name:?} must be a single path component"
        )));
    }
    let content = match a.store_stream(r, 0) {
        Ok(c) => c,
        Err(FileErr::Source(e)) => return Err(Error::io("read", format!("<stdin:{name}>"), e)),
        Err(FileErr::Fatal(e)) => return Err(e),
    };
    a.c.files.fetch_add(1, Relaxed);
    a.c.files_new.fetch_add(1, Relaxed);
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::File);
    n.mode = 0o644;
    n.uid = nix::unistd::getuid().as_raw();
    n.gid = nix::unistd::getgid().as_raw();
    n.user = a.user_name(n.uid);
    n.group = a.group_name(n.gid);
    (n.mtime_ns, n.ctime_ns) = (now, now);
    if a.opts.with_atime {
        n.atime_ns = now;
    }
    n.size = content.size;
    n.links = 1;
    n.content = content.blobs;
    n.digest = Some(content.digest);
    Ok(n)
}

/// Parses an RFC 3339 time, keeping its UTC offset, or a civil time (`2026-01-02 03:04:05`) in
/// the local zone, into the stored form.
pub fn parse_time(t: &str) -> Result<String> {
    let bad =
        |e: &dyn std::fmt::Display| Error::Invalid(format!("time {t:?} is not RFC 3339: {e}"));
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        let tz = if t.ends_with('Z') || t.ends_with('z') {
            jiff::tz::TimeZone::UTC
        } else {
            let tail = &t[t.len().saturating_sub(6)..];
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            let h: i32 = tail.get(1..3).and_then(|x| x.parse().ok()).unwrap_or(0);
            let m: i32 = tail.get(4..6).and_then(|x| x.parse().ok()).unwrap_or(0);
            let off =
                jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).map_err(|e| bad(&e))?;
            jiff::tz::TimeZone::fixed(off)
        };
        return Ok(format_time(ts.to_zoned(tz)));
    }
    let dt: jiff::civil::DateTime = t.replace(' ', "T").parse().map_err(|e| bad(&e))?;
    let z = dt
        .to_zoned(jiff::tz::TimeZone::system())
        .map_err(|e| bad(&e))?;
    Ok(format_time(z))
}

fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    host: &str,
    paths: &[String],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    if let Some(p) = &opts.parent {
        return repo
            .resolve_snapshot(p, &SnapshotFilter::default())
            .map(Some);
    }
    let filter = SnapshotFilter {
        hosts: vec![host.to_string()],
        ..Default::default()
    };
    let mut all = repo.snapshots()?;
    all.retain(|(_, s)| filter.matches(s) && s.paths == paths);
    Ok(all.pop())
}

/// Bytes of the source repository's blobs read ahead of the files being copied, across the
/// whole copy (plus one blob per file being read, so every file makes progress).
const COPY_AHEAD_BYTES: u64 = 64 << 20;

/// Reads of the source repository started before the copy needs them (object stores only):
/// each blob is a ranged read that waits a round trip, and a copy otherwise has one per file
/// being read, one file per core, in flight.
struct Ahead {
    /// Reads in flight for one file at most: `io_width()` of the source, 0 on local disk
    /// (read when needed, as before).
    width: usize,
    /// Bytes of reads started and not yet taken, for `COPY_AHEAD_BYTES`.
    bytes: AtomicU64,
}

/// A read started on the source repository's I/O threads, or one to make when it is needed
/// (a blob the index does not name: `read_blob` then reports it).
enum Pending {
    Started {
        id: BlobId,
        len: u64,
        rx: std::sync::mpsc::Receiver<Result<Vec<u8>>>,
    },
    Later(BlobId),
}

/// Reads the concatenated content of a file node from another repository.
struct BlobReader<'r> {
    repo: &'r Repository,
    index: &'r Index,
    ahead: &'r Ahead,
    ids: std::vec::IntoIter<BlobId>,
    pending: std::collections::VecDeque<Pending>,
    cur: Vec<u8>,
    pos: usize,
}

impl<'r> BlobReader<'r> {
    fn new(repo: &'r Repository, index: &'r Index, ahead: &'r Ahead, ids: Vec<BlobId>) -> Self {
        BlobReader {
            repo,
            index,
            ahead,
            ids: ids.into_iter(),
            pending: Default::default(),
            cur: Vec::new(),
            pos: 0,
        }
    }

    /// Starts reading the next blob, unless `width` reads are pending already or (unless
    /// `force`) the copy's read-ahead budget is spent. False when nothing was started.
    fn start(&mut self, force: bool) -> bool {
        if self.pending.len() >= self.ahead.width {
            return false;
        }
        let Some(&id) = self.ids.as_slice().first() else {
            return false;
        };
        let loc = self.index.get(BlobType::Data, &id);
        let len = loc.map_or(0, |l| l.length as u64);
        if !force && self.ahead.bytes.load(Relaxed) + len > COPY_AHEAD_BYTES {
            return false;
        }
        self.ids.next();
        let Some(loc) = loc else {
            self.pending.push_back(Pending::Later(id));
            return true;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let repo = self.repo.clone();
        let started = self.repo.spawn_io(move || {
            // The reader may be gone (an error elsewhere): nobody wants the blob then.
            let _ = tx.send(crate::pack::read_blob_at(&repo, BlobType::Data, &id, &loc));
        });
        if started {
            self.ahead.bytes.fetch_add(len, Relaxed);
            self.pending.push_back(Pending::Started { id, len, rx });
        } else {
            self.pending.push_back(Pending::Later(id));
        }
        true
    }

    /// Starts reads for this file while the budget allows.
    fn read_ahead(&mut self) {
        while self.start(false) {}
    }

    fn next_blob(&mut self) -> Option<Result<Vec<u8>>> {
        if self.pending.is_empty() {
            self.start(true);
        }
        self.read_ahead();
        let sync = |id: BlobId| crate::pack::read_blob(self.repo, self.index, BlobType::Data, &id);
        match self.pending.pop_front() {
            Some(Pending::Started { id, len, rx }) => {
                self.ahead.bytes.fetch_sub(len, Relaxed);
                match rx.recv() {
                    Ok(Ok(raw)) => Some(Ok(raw)),
                    // Failed (or its thread died): again through the index, which also tries
                    // the blob's other copies and names what is wrong.
                    _ => Some(sync(id)),
                }
            }
            Some(Pending::Later(id)) => Some(sync(id)),
            None => self.ids.next().map(sync),
        }
    }
}

impl Drop for BlobReader<'_> {
    fn drop(&mut self) {
        for p in &self.pending {
            if let Pending::Started { len, .. } = p {
                self.ahead.bytes.fetch_sub(*len, Relaxed);
            }
        }
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            let Some(next) = self.next_blob() else {
                return Ok(0);
            };
            self.cur = next.map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Archiver<'_> {
    /// Re-stores a tree of another repository: file contents are re-chunked, re-encrypted and
    /// deduplicated against this repository; every file's digest is checked on the way.
    fn copy_tree(
        &self,
        src: &Repository,
        sidx: &Index,
        ahead: &Ahead,
        tree: &TreeId,
    ) -> Result<Tree> {
        let t = load_tree(src, sidx, tree)?;
        // Every file of the directory starts its reads now, in order, within the budget: a
        // directory of small files (one blob each) then has them all on the wire at once,
        // not one per core.
        let nodes: Vec<(Node, Option<BlobReader>)> = t
            .nodes
            .into_iter()
            .map(|mut n| {
                let r = (n.kind == NodeKind::File).then(|| {
                    let mut r = BlobReader::new(src, sidx, ahead, std::mem::take(&mut n.content));
                    r.read_ahead();
                    r
                });
                (n, r)
            })
            .collect();
        let nodes = nodes
            .into_par_iter()
            .map(|(mut n, r)| {
                match n.kind {
                    NodeKind::File => {
                        let mut r = r.expect("made for every file");
                        let c = match self.store_stream(&mut r, n.size) {
                            Ok(c) => c,
                            Err(FileErr::Fatal(e)) => return Err(e),
                            Err(FileErr::Source(e)) => {
                                return Err(Error::Invalid(format!(
                                    "reading {} from the source repository: {e}",
                                    n.name_lossy()
                                )))
                            }
                        };
                        if n.digest.is_some_and(|d| d != c.digest) || c.size != n.size {
                            return Err(Error::corrupt(
                                "file",
                                n.name_lossy(),
                                "copied content differs from the source digest",
                            ));
                        }
                        n.content = c.blobs;
                        self.c.files.fetch_add(1, Relaxed);
                        self.c.files_new.fetch_add(1, Relaxed);
                    }
                    NodeKind::Dir => {
                        let sub = n.subtree.expect("decoded dirs have subtrees");
                        let tree = self.copy_tree(src, sidx, ahead, &sub)?;
                        self.finish_dir(&mut n, tree, None)?;
                    }
                    _ => {}
                }
                Ok(n)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tree { nodes })
    }
}

/// The identity a copied snapshot carries: the first snapshot of its line of copies.
pub fn copy_identity(id: &SnapshotId, s: &Snapshot) -> SnapshotId {
    s.original.unwrap_or(*id)
}

/// Copies one snapshot of `src` into `dst` (re-chunked and re-encrypted for `dst`), unless
/// `dst` already has a copy of it. Returns the new snapshot id, or `None` when skipped.
/// Packs and index files are written as by a backup, so an interrupted copy resumes cheaply.
pub fn copy_snapshot(
    dst: &Repository,
    dst_index: &Index,
    src: &Repository,
    src_index: &Index,
    src_id: &SnapshotId,
    snap: &Snapshot,
    lock: Option<&LockGuard>,
) -> Result<Option<SnapshotId>> {
    let identity = copy_identity(src_id, snap);
    if dst
        .snapshots()?
        .iter()
        .any(|(id, s)| copy_identity(id, s) == identity || *id == identity)
    {
        return Ok(None);
    }
    let opts = BackupOptions::default();
    let a = Archiver::new(dst, dst_index, &opts)?;
    let ahead = Ahead {
        width: src.io_width(),
        bytes: AtomicU64::new(0),
    };
    let mut root = a.copy_tree(src, src_index, &ahead, &snap.tree)?;
    let tree = a.add_blob(BlobType::Tree, &root.encode())?;
    a.saver.flush()?;
    let copy = Snapshot {
        tree,
        parent: None,
        original: Some(identity),
        ..snap.clone()
    };
    if let Some(l) = lock {
        l.check()?;
    }
    dst.save_snapshot(&copy).map(Some)
}
