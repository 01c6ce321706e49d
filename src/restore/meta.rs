//! Metadata through descriptors: owner, xattrs, mode and times; links and special files.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType as FsType, Mode, OFlags, Timestamps, XattrFlags, CWD};
use rustix::io::Errno;

use super::dirs::Dirs;
use super::{failed, Events, Fail, Item, ItemAction};
use crate::error::{Error, Result};
use crate::format::{Node, NodeKind};
use crate::problem::{Problem, ProblemKind};

/// Creates the symlinks and special files `items`, with their metadata; returns how many.
pub(super) fn restore_specials(
    dirs: &Dirs,
    items: &[usize],
    owner: bool,
    fail: &Fail,
    events: &Events,
) -> u64 {
    items
        .par_iter()
        .map(|&i| {
            let it = &dirs.items[i];
            let r = dirs.parent_of(it).and_then(|dir| {
                dirs.clear(&dir, &it.node.name)
                    .map_err(|e| Error::io("replace", &it.dest, e.into()))?;
                create_special(&it.node, &dir, &it.dest)?;
                set_meta_at(&it.node, &dir, &it.dest, owner)
            });
            match r {
                Ok(()) => {
                    events.emit(ItemAction::Restored, &it.snap_path, None);
                    1
                }
                Err(e) => {
                    fail(it, "restore", failed(&e));
                    0
                }
            }
        })
        .sum()
}

/// Links `it` to `first`, already restored, replacing whatever stands at `it`.
pub(super) fn hard_link(dirs: &Dirs, first: &Item, it: &Item) -> Result<()> {
    let (from, to) = (dirs.parent_of(first)?, dirs.parent_of(it)?);
    let name = it.node.name.as_slice();
    dirs.clear(&to, name)
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
pub(super) fn set_dir_meta(dirs: &Dirs, made: &[bool], owner: bool, fail: &Fail, events: &Events) {
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
            match r {
                Ok(()) => events.emit(ItemAction::Restored, &it.snap_path, None),
                Err(e) => fail(
                    it,
                    "set metadata",
                    Problem::from_error(&e, ProblemKind::MetadataFailed),
                ),
            }
        });
    }
}

/// Creates a symlink or special file by name in `dir`, where nothing stands now.
pub(super) fn create_special(node: &Node, dir: &OwnedFd, dest: &Path) -> Result<()> {
    let name = node.name.as_slice();
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

pub(super) fn special_type(kind: NodeKind) -> FsType {
    match kind {
        NodeKind::Symlink => FsType::Symlink,
        NodeKind::Fifo => FsType::Fifo,
        NodeKind::Socket => FsType::Socket,
        NodeKind::CharDevice => FsType::CharacterDevice,
        NodeKind::BlockDevice => FsType::BlockDevice,
        NodeKind::File | NodeKind::Dir => unreachable!("not special"),
    }
}

pub(super) fn timestamps(node: &Node) -> Timestamps {
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
pub(super) fn atime(node: &Node) -> i64 {
    if node.atime_ns == 0 {
        node.mtime_ns
    } else {
        node.atime_ns
    }
}

/// Filesystems without xattrs, or namespaces a non-root user may not write.
pub(super) fn xattr_skipped(e: Errno) -> bool {
    matches!(e, Errno::NOTSUP | Errno::PERM)
}

/// Sets a restored file's or directory's owner, xattrs, mode and times (in that order:
/// changing the owner clears setuid bits) on its descriptor.
pub(super) fn set_fd_meta(node: &Node, fd: BorrowedFd<'_>, dest: &Path, owner: bool) -> Result<()> {
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

pub(super) fn owner_ids(node: &Node) -> (rustix::fs::Uid, rustix::fs::Gid) {
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
pub(super) fn set_meta_at(node: &Node, dir: &OwnedFd, dest: &Path, owner: bool) -> Result<()> {
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

pub(super) fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}
