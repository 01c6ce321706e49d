//! Restore: snapshot → trees → index → pack reader → files and metadata on disk.
//!
//! The tree is walked once into a plan; directories are created first, then file contents are
//! written in parallel (each file's blobs read by range and verified: a blob that fails to open
//! or a file whose whole-content digest differs is an error, and the partial file is removed, so
//! wrong data is never left behind as if it were restored), then links and special files, and
//! last the directories' own metadata, deepest first, so their times are not disturbed.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Snapshot};
use crate::id::{BlobId, Id};
use crate::index::Index;
use crate::pack::read_blob;
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

/// Blobs of one file fetched and opened in parallel at a time: at most this many, and at most
/// `RESTORE_WINDOW_BYTES` of plaintext unless a single blob is larger, so memory per file in
/// flight stays near 8 MiB whatever the chunk sizes.
const RESTORE_WINDOW: usize = 8;
const RESTORE_WINDOW_BYTES: u64 = 8 << 20;

/// Splits a file's blob list into windows (see `RESTORE_WINDOW`).
fn windows<'a>(index: &Index, content: &'a [BlobId]) -> Vec<&'a [BlobId]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, id) in content.iter().enumerate() {
        let len = index
            .get(BlobType::Data, id)
            .map_or(0, |l| l.raw_len as u64);
        if i > start && (i - start == RESTORE_WINDOW || bytes + len > RESTORE_WINDOW_BYTES) {
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

struct Item {
    /// Path inside the snapshot, `/`-separated, for patterns and messages.
    snap_path: String,
    dest: PathBuf,
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
    /// Adds the children of a tree; returns whether anything below was selected.
    fn walk(&mut self, tree_id: &Id, snap_dir: &str, dest: &Path, included: bool) -> Result<bool> {
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
                    node,
                });
                let below = self.walk(&sub, &snap_path, &dest, inc)?;
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
    match start.kind {
        NodeKind::Dir => {
            planner.walk(&start.subtree.expect("dir"), &base, &opts.target, false)?;
        }
        _ => planner.items.push(Item {
            snap_path: base.clone(),
            dest: opts.target.join(OsStr::from_bytes(&start.name)),
            node: start.clone(),
        }),
    }
    let items = planner.items;
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
    for it in items.iter().filter(|i| i.node.kind == NodeKind::Dir) {
        match fs::create_dir(&it.dest) {
            Ok(()) => sum.dirs += 1,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && it.dest.is_dir() => {
                sum.dirs += 1
            }
            Err(e) => fail(it, "create directory", &e),
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

    let written: Vec<(u64, u64, u64)> = files
        .par_iter()
        .map(|&i| {
            let it = &items[i];
            let r = match it.node.kind {
                NodeKind::File => write_file(repo, index, &it.node, &it.dest, opts.sparse)
                    .and_then(|(b, f)| {
                        set_file_meta(&it.node, &f, &it.dest, owner).map(|_| (1, 0, b))
                    }),
                _ => create_special(&it.node, &it.dest)
                    .and_then(|_| set_meta(&it.node, &it.dest, owner))
                    .map(|_| (0, 1, 0)),
            };
            match r {
                Ok(c) => c,
                Err(e) => {
                    fail(it, "restore", &e);
                    (0, 0, 0)
                }
            }
        })
        .collect();
    for (f, o, b) in written {
        sum.files += f;
        sum.others += o;
        sum.bytes += b;
    }

    for (i, f) in link_to {
        let (it, first) = (&items[i], &items[f]);
        let _ = fs::remove_file(&it.dest);
        match fs::hard_link(&first.dest, &it.dest) {
            Ok(()) => sum.files += 1,
            Err(e) => fail(it, &format!("hard link to {}", first.snap_path), &e),
        }
    }

    // Directory metadata last, deepest level first (a parent restored without search
    // permission would lock a non-root restorer out of its children), each level in parallel:
    // setting a directory's metadata does not change its parent's.
    let mut dirs: Vec<&Item> = items
        .iter()
        .filter(|i| i.node.kind == NodeKind::Dir)
        .collect();
    dirs.sort_by_key(|i| std::cmp::Reverse(i.dest.components().count()));
    for level in dirs.chunk_by(|a, b| a.dest.components().count() == b.dest.components().count()) {
        level.par_iter().for_each(|it| {
            if let Err(e) = set_meta(&it.node, &it.dest, owner) {
                fail(it, "set metadata", &e);
            }
        });
    }

    if opts.verify {
        let failed: Vec<(usize, Error)> = items
            .par_iter()
            .enumerate()
            .filter(|(_, it)| it.node.kind == NodeKind::File)
            .filter_map(|(i, it)| verify_file(&it.node, &it.dest).err().map(|e| (i, e)))
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

/// Re-reads a restored file and checks its whole-content digest.
pub fn verify_file(node: &Node, path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOATIME: reading back must not undo the atime just restored.
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        r => r,
    }
    .map_err(|e| Error::io("open", path, e))?;
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

/// Writes a regular file's content; returns its length and the open file (for its metadata).
fn write_file(
    repo: &Repository,
    index: &Index,
    node: &Node,
    dest: &Path,
    sparse: bool,
) -> Result<(u64, File)> {
    let io = |op, e| Error::io(op, dest, e);
    if let Ok(m) = fs::symlink_metadata(dest) {
        if !m.is_file() {
            let _ = fs::remove_file(dest);
        }
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| io("create", e))?;
    let r = (|| -> Result<u64> {
        let mut h = blake3::Hasher::new();
        let mut pos = 0u64;
        let mut pending_seek = false;
        // Blobs are fetched and opened a window at a time in parallel, so one large file keeps
        // every core busy; they are written and hashed in order. A blob repeated back to back
        // (runs of zeros) is fetched once.
        let mut last: Option<(BlobId, std::sync::Arc<Vec<u8>>, bool)> = None;
        for window in windows(index, &node.content) {
            let mut wanted: Vec<BlobId> = window.to_vec();
            wanted.dedup();
            if let Some((id, _, _)) = &last {
                wanted.retain(|w| w != id);
            }
            let mut fetched: HashMap<BlobId, (std::sync::Arc<Vec<u8>>, bool)> = wanted
                .par_iter()
                .map(|id| {
                    let d = read_blob(repo, index, BlobType::Data, id)?;
                    let zero = sparse && d.iter().all(|&b| b == 0);
                    Ok((*id, (std::sync::Arc::new(d), zero)))
                })
                .collect::<Result<_>>()?;
            if let Some((id, d, z)) = &last {
                fetched.insert(*id, (d.clone(), *z));
            }
            for id in window {
                if last.as_ref().map(|l| l.0) != Some(*id) {
                    let (d, z) = fetched.get(id).expect("fetched above");
                    last = Some((*id, d.clone(), *z));
                }
                let (_, data, zero) = last.as_ref().expect("set above");
                h.update(data);
                if *zero {
                    f.seek(SeekFrom::Current(data.len() as i64))
                        .map_err(|e| io("seek", e))?;
                    pending_seek = true;
                } else {
                    f.write_all(data).map_err(|e| io("write", e))?;
                    pending_seek = false;
                }
                pos += data.len() as u64;
            }
        }
        if pending_seek {
            f.set_len(pos).map_err(|e| io("set length", e))?;
        }
        let got = Id(*h.finalize().as_bytes());
        if node.digest.is_some_and(|d| d != got) || pos != node.size {
            return Err(Error::corrupt(
                "file",
                dest.display(),
                "restored content does not match the digest recorded at backup",
            ));
        }
        Ok(pos)
    })();
    match r {
        Ok(n) => Ok((n, f)),
        Err(e) => {
            drop(f);
            let _ = fs::remove_file(dest);
            Err(e)
        }
    }
}

fn create_special(node: &Node, dest: &Path) -> Result<()> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    if fs::symlink_metadata(dest).is_ok() {
        fs::remove_file(dest).map_err(|e| Error::io("replace", dest, e))?;
    }
    let mode = Mode::from_bits_truncate(node.mode & 0o7777);
    let r = match node.kind {
        NodeKind::Symlink => {
            return std::os::unix::fs::symlink(OsStr::from_bytes(&node.link_target), dest)
                .map_err(|e| Error::io("create symlink", dest, e))
        }
        NodeKind::Fifo => mknod(dest, SFlag::S_IFIFO, mode, 0),
        NodeKind::Socket => mknod(dest, SFlag::S_IFSOCK, mode, 0),
        NodeKind::CharDevice => mknod(dest, SFlag::S_IFCHR, mode, node.rdev as _),
        NodeKind::BlockDevice => mknod(dest, SFlag::S_IFBLK, mode, node.rdev as _),
        NodeKind::File | NodeKind::Dir => unreachable!("not special"),
    };
    r.map_err(|e| Error::io("create special file", dest, e.into()))
}

/// `set_meta` for a regular file still open after its content was written: the same steps in
/// the same order (owner, xattrs, mode, times) on the descriptor, sparing four path lookups.
fn set_file_meta(node: &Node, f: &File, dest: &Path, owner: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use xattr::FileExt;
    let io = |op, e: std::io::Error| Error::io(op, dest, e);
    if owner {
        std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid))
            .map_err(|e| io("change owner", e))?;
    }
    for x in &node.xattrs {
        if let Err(e) = f.set_xattr(OsStr::from_bytes(&x.name), &x.value) {
            if !matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) {
                return Err(io("set xattr", e));
            }
        }
    }
    f.set_permissions(fs::Permissions::from_mode(node.mode & 0o7777))
        .map_err(|e| io("change mode", e))?;
    filetime::set_file_handle_times(
        f,
        Some(file_time(node.atime_ns)),
        Some(file_time(node.mtime_ns)),
    )
    .map_err(|e| io("set times", e))
}

fn file_time(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

fn set_meta(node: &Node, dest: &Path, owner: bool) -> Result<()> {
    let io = |op, e: std::io::Error| Error::io(op, dest, e);
    let symlink = node.kind == NodeKind::Symlink;
    if owner {
        nix::unistd::fchownat(
            None,
            dest,
            Some(node.uid.into()),
            Some(node.gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io("change owner", e.into()))?;
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        if let Err(e) = xattr::set(dest, name, &x.value) {
            // Filesystems without xattrs, or namespaces a non-root user may not write.
            if !matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) {
                return Err(io("set xattr", e));
            }
        }
    }
    if !symlink {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dest, fs::Permissions::from_mode(node.mode & 0o7777))
            .map_err(|e| io("change mode", e))?;
    }
    filetime::set_symlink_file_times(dest, file_time(node.atime_ns), file_time(node.mtime_ns))
        .map_err(|e| io("set times", e))
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
    for id in &node.content {
        let data = read_blob(repo, index, BlobType::Data, id)?;
        h.update(&data);
        out.write_all(&data)
            .map_err(|e| Error::io("write", "<stdout>", e))?;
        n += data.len() as u64;
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
    use crate::format::{BlobEntry, IndexFile, IndexPack};

    #[test]
    fn windows_bound_count_and_bytes() {
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
}
