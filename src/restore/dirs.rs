//! The directories of a restore, each opened from its parent's descriptor without following
//! symlinks.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{failed, Fail, Item};
use crate::error::{Error, Result};
use crate::format::NodeKind;

/// Creates the target if need be and opens it. Its own path may go through symlinks (the
/// user chose it); nothing below it does.
pub(super) fn open_target(target: &std::path::Path) -> Result<OwnedFd> {
    std::fs::create_dir_all(target).map_err(|e| Error::io("create directory", target, e))?;
    rustix::fs::openat(
        rustix::fs::CWD,
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open directory", target, e.into()))
}

/// Opens the target if it exists (a dry run creates nothing); `None` if it does not.
pub(super) fn open_target_if_there(target: &std::path::Path) -> Result<Option<OwnedFd>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::openat(rustix::fs::CWD, target, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("open directory", target, e.into())),
    }
}

/// Makes every directory item, parents first (items are planned that way), keeping each
/// one's descriptor; returns which were made.
pub(super) fn make_dirs(dirs: &Dirs, fail: &Fail) -> Vec<bool> {
    let mut made = vec![false; dirs.items.len()];
    for (i, it) in dirs.items.iter().enumerate() {
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
            }
            Err(e) => fail(it, "restore", failed(&e)),
        }
    }
    made
}

/// Directories kept open at once (on top of `MAX_OPEN` files), well below the usual limit of
/// 1024 descriptors: a tree may have more directories than a process may open files.
pub(super) const MAX_OPEN_DIRS: usize = 512;

/// Descriptors of the directories being restored, each opened from its parent's descriptor
/// with `O_NOFOLLOW` (the target's own from its path, the user's choice), so no path below
/// the target is ever resolved through a symlink: one planted by a local user, or left by an
/// earlier restore of another snapshot. At most `MAX_OPEN_DIRS` stay open; an evicted one is
/// opened again from its nearest open ancestor, one component at a time.
pub(super) struct Dirs<'a> {
    pub(super) root: Arc<OwnedFd>,
    pub(super) items: &'a [Item],
    pub(super) open: Mutex<DirCache>,
    /// `delete`: a directory with entries where something else goes is removed with them.
    pub(super) remove_trees: bool,
}

#[derive(Default)]
pub(super) struct DirCache {
    /// Descriptor and last use of each open directory, by item.
    pub(super) fds: HashMap<usize, (Arc<OwnedFd>, u64)>,
    pub(super) clock: u64,
}

impl DirCache {
    pub(super) fn get(&mut self, dir: usize) -> Option<Arc<OwnedFd>> {
        self.clock += 1;
        let clock = self.clock;
        self.fds.get_mut(&dir).map(|(fd, used)| {
            *used = clock;
            fd.clone()
        })
    }

    pub(super) fn insert(&mut self, dir: usize, fd: Arc<OwnedFd>) {
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
    pub(super) fn new(root: OwnedFd, items: &'a [Item], remove_trees: bool) -> Self {
        Dirs {
            root: Arc::new(root),
            items,
            open: Mutex::default(),
            remove_trees,
        }
    }

    /// Removes whatever stands at `name` in `dir` so that something else can be created
    /// there: `clear_entry`, or with `delete` a directory and everything in it.
    pub(super) fn clear(&self, dir: &OwnedFd, name: &[u8]) -> rustix::io::Result<()> {
        if self.remove_trees {
            match remove_tree(dir, name, false, &mut |_| ()) {
                Err(Errno::NOENT) => Ok(()),
                r => r,
            }
        } else {
            clear_entry(dir, name)
        }
    }

    pub(super) fn insert(&self, dir: usize, fd: OwnedFd) {
        self.open.lock().unwrap().insert(dir, Arc::new(fd));
    }

    /// The descriptor of directory item `dir` (`None`: the target).
    pub(super) fn get(&self, dir: Option<usize>) -> rustix::io::Result<Arc<OwnedFd>> {
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
    pub(super) fn parent_of(&self, it: &Item) -> Result<Arc<OwnedFd>> {
        self.get(it.parent).map_err(|e| {
            let dir = it.dest.parent().unwrap_or(&it.dest);
            Error::io("open directory", dir, e.into())
        })
    }
}

pub(super) fn open_dir(parent: &OwnedFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty())
}

/// Makes `name` in `parent` a directory and opens it. An existing directory is kept; a
/// symlink, file or special file there is removed, never followed. A new directory stays
/// private (0700) until its own metadata is set at the end, so no other local user can plant
/// anything in it meanwhile.
pub(super) fn make_dir(parent: &OwnedFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
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
pub(super) fn clear_entry(dir: &OwnedFd, name: &[u8]) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dir` and, for a directory, everything in it, each directory opened
/// from its parent's descriptor with `O_NOFOLLOW` (a symlink is removed, never followed), and
/// calls `gone` with each removed entry's path below `name` (`""` for `name` itself), entries
/// before their directory. With `dry_run` nothing is removed, only reported.
pub(super) fn remove_tree(
    dir: &OwnedFd,
    name: &[u8],
    dry_run: bool,
    gone: &mut dyn FnMut(&[u8]),
) -> rustix::io::Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
        if !dry_run {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        }
        gone(b"");
        return Ok(());
    }
    let sub = open_dir(dir, name)?;
    for n in entries(&sub)? {
        remove_tree(&sub, &n, dry_run, &mut |below: &[u8]| {
            let mut p = n.clone();
            if !below.is_empty() {
                p.push(b'/');
                p.extend_from_slice(below);
            }
            gone(&p)
        })?;
    }
    if !dry_run {
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    }
    gone(b"");
    Ok(())
}

/// The names in a directory, `.` and `..` left out.
pub(super) fn entries(dir: &OwnedFd) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let n = e?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(n);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

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
}
